package credstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis stores one hash per access key:
//
//	<prefix>cred:{<access key>}
//	  secret_enc         the secret key, AES-256-GCM sealed (see Keyring)
//	  secret             the secret key in plain text, only without a keyring
//	  user_id            Keystone user id
//	  project_id         Keystone project id
//	  trust_id           optional Keystone trust id
//	  enabled            "1" or "0"
//	  created_at         RFC 3339 time
//	  user_name, user_domain_id, project_name, project_domain_id
//	                     optional, for standalone identity
//	  roles              optional, comma-separated role names
//	  source             "keystone" if `creds sync` manages the record
//
// The braces are a Redis Cluster hash tag: every key about one access key
// lands on one shard. The default prefix is "ec2proxy:v1:"; the version
// changes if the layout does.
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	keyring *Keyring // nil: secrets are stored in plain text
}

// NewRedis uses client (single node, Sentinel or Cluster) with key prefix.
// With a keyring, secrets are stored encrypted; without, in plain text.
func NewRedis(client redis.UniversalClient, prefix string, keyring *Keyring) *Redis {
	return &Redis{client: client, prefix: prefix, keyring: keyring}
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
	return s.decodeHash(accessKey, fields)
}

// Put writes (creates or replaces) a record.
func (s *Redis) Put(ctx context.Context, r Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	_, err := s.client.TxPipelined(ctx, s.replace(ctx, s.Key(r.AccessKey), r))
	if err != nil {
		return fmt.Errorf("%w: redis write: %w", ErrUnavailable, err)
	}
	return s.changed(ctx, r.AccessKey)
}

// replace queues the commands that make key hold r, and r alone.
func (s *Redis) replace(ctx context.Context, key string, r Record) func(redis.Pipeliner) error {
	return func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, s.encodeHash(r))
		return nil
	}
}

// Update replaces accessKey's record with fn's answer, given the record
// as it is now (exists false: there is none), atomically: if the record
// changes meanwhile fn is asked again (WATCH). A record that cannot be
// read is not updated: its error is returned (ErrNoKey is this host's key
// configuration, not the record: rewriting it with this host's keyring
// would seal it with a key the proxies may lack, or in plain text; found
// by a review). An error from fn is returned as it is; nothing is written.
func (s *Redis) Update(ctx context.Context, accessKey string, fn func(cur Record, exists bool) (Record, error)) error {
	key := s.Key(accessKey)
	err := s.watched(ctx, key, accessKey, func(tx *redis.Tx) error {
		h, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("%w: redis HGETALL: %w", ErrUnavailable, err)
		}
		cur := Record{AccessKey: accessKey}
		if len(h) > 0 {
			if cur, err = s.decodeHash(accessKey, h); err != nil {
				return updateErr{err}
			}
		}
		r, err := fn(cur, len(h) > 0)
		if err != nil {
			return updateErr{err}
		}
		if err := checkUpdated(accessKey, r); err != nil {
			return updateErr{err}
		}
		_, err = tx.TxPipelined(ctx, s.replace(ctx, key, r))
		if err != nil && !errors.Is(err, redis.TxFailedErr) {
			return fmt.Errorf("%w: redis write: %w", ErrUnavailable, err)
		}
		return err
	})
	if err != nil {
		return err
	}
	return s.changed(ctx, accessKey)
}

// watched runs fn in a WATCH of key (accessKey's record or shared token),
// again while it changes under fn (which then reads it afresh). An error
// of fn's own (an updateErr) is returned as it is, go-redis's as
// ErrUnavailable.
func (s *Redis) watched(ctx context.Context, key, accessKey string, fn func(*redis.Tx) error) error {
	for range 16 {
		err := s.client.Watch(ctx, fn, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		var mine updateErr
		switch {
		case errors.As(err, &mine):
			return mine.err // fn's, or the record's: as it is
		case err != nil && !errors.Is(err, ErrUnavailable):
			return fmt.Errorf("%w: redis WATCH: %w", ErrUnavailable, err) // go-redis's own (a connection)
		}
		return err
	}
	return fmt.Errorf("%w: the record of %s kept changing", ErrUnavailable, accessKey)
}

// updateErr carries an error of Update's own (fn's, the record's) out of
// go-redis's Watch, told apart from go-redis's.
type updateErr struct{ err error }

func (e updateErr) Error() string { return e.err.Error() }

// DeleteIf removes accessKey's record if remove says so of the record as
// Redis holds it then; it reports whether it did. remove is given what
// could be read of a record that cannot be used, with the error. A missing
// record is ErrNotFound.
func (s *Redis) DeleteIf(ctx context.Context, accessKey string, remove func(cur Record, err error) bool) (bool, error) {
	key := s.Key(accessKey)
	deleted, err := s.deleteWatched(ctx, key, accessKey, func(tx *redis.Tx) (bool, error) {
		h, err := tx.HGetAll(ctx, key).Result()
		switch {
		case err != nil:
			return false, fmt.Errorf("%w: redis HGETALL: %w", ErrUnavailable, err)
		case len(h) == 0:
			return false, updateErr{ErrNotFound}
		}
		return remove(s.decodeHash(accessKey, h)), nil
	})
	if err != nil || !deleted {
		return false, err
	}
	return true, s.changed(ctx, accessKey)
}

// deleteWatched deletes key if judge, reading it within a WATCH (see
// watched), says so; it reports whether it did.
func (s *Redis) deleteWatched(ctx context.Context, key, accessKey string, judge func(*redis.Tx) (bool, error)) (bool, error) {
	deleted := false
	err := s.watched(ctx, key, accessKey, func(tx *redis.Tx) error {
		deleted = false
		if remove, err := judge(tx); err != nil || !remove {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Del(ctx, key); return nil })
		if err != nil && !errors.Is(err, redis.TxFailedErr) {
			return fmt.Errorf("%w: redis DEL: %w", ErrUnavailable, err)
		}
		deleted = err == nil
		return err
	})
	return deleted, err
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
	return s.changed(ctx, accessKey)
}

// Ping checks that Redis answers.
func (s *Redis) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: redis PING: %w", ErrUnavailable, err)
	}
	return nil
}

func (s *Redis) encodeHash(r Record) map[string]any {
	enabled := "0"
	if r.Enabled {
		enabled = "1"
	}
	created := r.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	h := map[string]any{
		"user_id":    r.UserID,
		"project_id": r.ProjectID,
		"enabled":    enabled,
		"created_at": created.UTC().Format(time.RFC3339),
	}
	for name, v := range map[string]string{
		"trust_id": r.TrustID, "user_name": r.UserName, "user_domain_id": r.UserDomainID,
		"project_name": r.ProjectName, "project_domain_id": r.ProjectDomainID, "roles": strings.Join(r.Roles, ","),
		"source": r.Source,
	} {
		if v != "" {
			h[name] = v
		}
	}
	if s.keyring != nil {
		h["secret_enc"] = s.keyring.Encrypt(r.AccessKey, r.Secret)
	} else {
		h["secret"] = r.Secret
	}
	return h
}

func (s *Redis) decodeHash(accessKey string, h map[string]string) (Record, error) {
	r := Record{
		AccessKey:       accessKey,
		Secret:          h["secret"],
		Source:          h["source"],
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
	if sealed := h["secret_enc"]; sealed != "" {
		r.Secret = "" // until it is opened: an unreadable record is passed without one
		if s.keyring == nil {
			return r, fmt.Errorf("%w: the secret of %s is encrypted but no encryption key is configured", ErrNoKey, accessKey)
		}
		secret, _, err := s.keyring.Decrypt(accessKey, sealed)
		if err != nil {
			return r, err
		}
		r.Secret = secret
	}
	if r.Secret == "" || r.UserID == "" || r.ProjectID == "" {
		// A half-written or foreign hash: treat as absent, but say so.
		r.Secret = ""
		return r, fmt.Errorf("%w: record %s lacks secret, user_id or project_id", ErrCorrupt, accessKey)
	}
	return r, nil
}

// ErrCorrupt marks a stored record that cannot be used.
var ErrCorrupt = errors.New("credstore: corrupt record")

// List calls fn for every record, in no particular order; on a Cluster it
// scans every master. A record that cannot be decoded is passed with its
// error and what could be read of it, its secret empty (fn decides whether
// to go on); an error from fn stops the listing.
func (s *Redis) List(ctx context.Context, fn func(Record, error) error) error {
	return s.scanRaw(ctx, func(access string, h map[string]string) error {
		return fn(s.decodeHash(access, h))
	})
}

// scanRaw calls fn with every record hash as stored, one call at a time.
func (s *Redis) scanRaw(ctx context.Context, fn func(access string, h map[string]string) error) error {
	// The prefix is literal: its own glob characters matched other keys or
	// none ("ec2proxy[prod]:" listed nothing, and reencrypt re-sealed
	// nothing and said so with exit 0; found by a review).
	pattern := globEscaper.Replace(s.prefix) + "cred:*"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 500).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			access, ok := strings.CutPrefix(key, s.prefix+"cred:{")
			if !ok || !strings.HasSuffix(access, "}") {
				continue
			}
			access = strings.TrimSuffix(access, "}")
			h, err := c.HGetAll(ctx, key).Result()
			if err != nil {
				return fmt.Errorf("%w: redis HGETALL: %w", ErrUnavailable, err)
			}
			if len(h) == 0 {
				continue // deleted since the scan saw it
			}
			if err := fn(access, h); err != nil {
				return err
			}
		}
		if err := iter.Err(); err != nil {
			return fmt.Errorf("%w: redis SCAN: %w", ErrUnavailable, err)
		}
		return nil
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// ForEachMaster scans the masters concurrently; fn is called one
		// at a time all the same, as callers expect (creds list lost
		// records and creds sync crashed on concurrent map writes; found by
		// a review).
		var mu sync.Mutex
		serial := fn
		fn = func(access string, h map[string]string) error {
			mu.Lock()
			defer mu.Unlock()
			return serial(access, h)
		}
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.client)
}

// globEscaper quotes the characters SCAN MATCH patterns give a meaning.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)

// Reencrypt rewrites every secret not sealed with the keyring's current key
// (plain-text ones included). progress, if set, is told how many records
// were examined, every 1000. It returns how many it rewrote.
//
// A record whose secret cannot be read (sealed with a key not in the ring,
// or corrupt) is left as it is and the scan goes on: one such record
// stopped it, and with it the rotation of every other key (found by a
// review). They are reported at the end as an *UnreadableError. Redis
// failing stops it at once.
//
// Each record is rewritten as Redis holds it then, under WATCH: a record
// rewritten as the scan had read it undid a disable, a rotation or a
// delete made meanwhile (found by a review). Nothing is announced and no
// shared token dropped: the credential is the same, only its sealing
// changed, and announcing it made every replica forget every key's token
// at once.
func (s *Redis) Reencrypt(ctx context.Context, progress func(examined int)) (int, error) {
	if s.keyring == nil {
		return 0, errors.New("credstore: no encryption key is configured (credentials.encryption_key_file)")
	}
	rewritten, examined := 0, 0
	var unreadable UnreadableError
	skip := func(err error) error {
		if err == nil || errors.Is(err, ErrUnavailable) {
			return err
		}
		unreadable.add(err)
		return nil
	}
	err := s.scanRaw(ctx, func(access string, h map[string]string) error {
		examined++
		if progress != nil && examined%1000 == 0 {
			progress(examined)
		}
		if current, err := s.sealedCurrent(access, h); err != nil || current {
			return skip(err)
		}
		key := s.Key(access)
		resealed := false
		err := s.watched(ctx, key, access, func(tx *redis.Tx) error {
			resealed = false
			h, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return fmt.Errorf("%w: redis HGETALL: %w", ErrUnavailable, err)
			}
			if len(h) == 0 {
				return nil // deleted meanwhile
			}
			if current, err := s.sealedCurrent(access, h); err != nil || current {
				return updateErrOrNil(err) // resealed meanwhile
			}
			r, err := s.decodeHash(access, h)
			if err != nil {
				return updateErr{err}
			}
			_, err = tx.TxPipelined(ctx, s.replace(ctx, key, r))
			if err != nil && !errors.Is(err, redis.TxFailedErr) {
				return fmt.Errorf("%w: redis write: %w", ErrUnavailable, err)
			}
			resealed = err == nil
			return err
		})
		if resealed {
			rewritten++
		}
		return skip(err)
	})
	if err == nil && unreadable.Count > 0 {
		err = &unreadable
	}
	return rewritten, err
}

// UnreadableError lists the records Reencrypt left as they were because
// their secrets could not be read; each error names its access key.
type UnreadableError struct {
	Count  int
	Errors []error // the first maxListed
}

const maxListed = 20

func (e *UnreadableError) add(err error) {
	e.Count++
	if len(e.Errors) < maxListed {
		e.Errors = append(e.Errors, err)
	}
}

func (e *UnreadableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d record(s) could not be read and were left as they are", e.Count)
	for _, err := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(err.Error())
	}
	if e.Count > len(e.Errors) {
		fmt.Fprintf(&b, "\n  ... and %d more", e.Count-len(e.Errors))
	}
	return b.String()
}

// Unwrap lets errors.Is find ErrNoKey or ErrCorrupt among the listed
// errors (the first maxListed).
func (e *UnreadableError) Unwrap() []error { return e.Errors }

// sealedCurrent reports whether the record hash h of access holds a secret
// sealed with the keyring's current key. A key missing from the ring is an
// error: Reencrypt leaves the record as it is.
func (s *Redis) sealedCurrent(access string, h map[string]string) (bool, error) {
	sealed := h["secret_enc"]
	if sealed == "" {
		return false, nil // plain text
	}
	_, current, err := s.keyring.Decrypt(access, sealed)
	return current, err
}

func updateErrOrNil(err error) error {
	if err == nil {
		return nil
	}
	return updateErr{err}
}
