package credstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis stores one hash per access key:
//
//	<prefix>cred:{<access key>}
//	  secret             the secret key
//	  user_id            Keystone user id
//	  project_id         Keystone project id
//	  trust_id           optional Keystone trust id
//	  enabled            "1" or "0"
//	  created_at         RFC 3339 time
//	  user_name, user_domain_id, project_name, project_domain_id
//	                     optional, for standalone identity
//	  roles              optional, comma-separated role names
//
// The braces are a Redis Cluster hash tag: every key about one access key
// lands on one shard. The default prefix is "ec2proxy:v1:"; the version
// changes if the layout does.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis uses client (single node, Sentinel or Cluster) with key prefix.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Key is the Redis key of accessKey's record.
func (s *Redis) Key(accessKey string) string {
	return s.prefix + "cred:{" + accessKey + "}"
}

// Get reads one record.
func (s *Redis) Get(ctx context.Context, accessKey string) (Record, error) {
	fields, err := s.client.HGetAll(ctx, s.Key(accessKey)).Result()
	if err != nil {
		return Record{}, fmt.Errorf("%w: redis HGETALL: %w", ErrUnavailable, err)
	}
	if len(fields) == 0 {
		return Record{}, ErrNotFound
	}
	return decodeHash(accessKey, fields)
}

// Put writes (creates or replaces) a record.
func (s *Redis) Put(ctx context.Context, r Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	key := s.Key(r.AccessKey)
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, encodeHash(r))
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: redis write: %w", ErrUnavailable, err)
	}
	return nil
}

// Delete removes a record; deleting a missing record is ErrNotFound.
func (s *Redis) Delete(ctx context.Context, accessKey string) error {
	n, err := s.client.Del(ctx, s.Key(accessKey)).Result()
	if err != nil {
		return fmt.Errorf("%w: redis DEL: %w", ErrUnavailable, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis PING: %w", ErrUnavailable, err)
	}
	return nil
}

func encodeHash(r Record) map[string]any {
	enabled := "0"
	if r.Enabled {
		enabled = "1"
	}
	created := r.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	h := map[string]any{
		"secret":     r.Secret,
		"user_id":    r.UserID,
		"project_id": r.ProjectID,
		"enabled":    enabled,
		"created_at": created.UTC().Format(time.RFC3339),
	}
	for name, v := range map[string]string{
		"trust_id": r.TrustID, "user_name": r.UserName, "user_domain_id": r.UserDomainID,
		"project_name": r.ProjectName, "project_domain_id": r.ProjectDomainID, "roles": strings.Join(r.Roles, ","),
	} {
		if v != "" {
			h[name] = v
		}
	}
	return h
}

func decodeHash(accessKey string, h map[string]string) (Record, error) {
	r := Record{
		AccessKey:       accessKey,
		Secret:          h["secret"],
		UserID:          h["user_id"],
		ProjectID:       h["project_id"],
		TrustID:         h["trust_id"],
		Enabled:         h["enabled"] == "1",
		UserName:        h["user_name"],
		UserDomainID:    h["user_domain_id"],
		ProjectName:     h["project_name"],
		ProjectDomainID: h["project_domain_id"],
	}
	if roles := h["roles"]; roles != "" {
		r.Roles = strings.Split(roles, ",")
	}
	if t, err := time.Parse(time.RFC3339, h["created_at"]); err == nil {
		r.CreatedAt = t
	}
	if r.Secret == "" || r.UserID == "" || r.ProjectID == "" {
		// A half-written or foreign hash: treat as absent, but say so.
		return Record{}, fmt.Errorf("%w: record %s lacks secret, user_id or project_id", ErrCorrupt, accessKey)
	}
	return r, nil
}

// ErrCorrupt marks a stored record that cannot be used.
var ErrCorrupt = errors.New("credstore: corrupt record")
