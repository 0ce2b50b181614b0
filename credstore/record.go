// Package credstore holds EC2 credentials: the record kept per access key,
// the Redis and file backends, and an in-process cache in front of them.
package credstore

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Record is one EC2 credential. Secret must never be logged.
type Record struct {
	AccessKey string    `json:"access_key" yaml:"access_key"`
	Secret    string    `json:"secret" yaml:"secret"`
	UserID    string    `json:"user_id" yaml:"user_id"`
	ProjectID string    `json:"project_id" yaml:"project_id"`
	TrustID   string    `json:"trust_id,omitempty" yaml:"trust_id"`
	Enabled   bool      `json:"enabled" yaml:"-"` // files: see fileRecord
	CreatedAt time.Time `json:"created_at" yaml:"created_at"`
	// Source is "keystone" for records `creds sync` manages (it may update
	// and remove them), "" for records created here.
	Source string `json:"source,omitempty" yaml:"source"`

	// Identity details used in standalone mode (no Keystone); in keystone
	// mode the token supplies them.
	UserName        string   `json:"user_name,omitempty" yaml:"user_name"`
	UserDomainID    string   `json:"user_domain_id,omitempty" yaml:"user_domain_id"`
	ProjectName     string   `json:"project_name,omitempty" yaml:"project_name"`
	ProjectDomainID string   `json:"project_domain_id,omitempty" yaml:"project_domain_id"`
	Roles           []string `json:"roles,omitempty" yaml:"roles"`
}

// Errors a backend returns. Unavailable errors wrap ErrUnavailable.
var (
	ErrNotFound    = errors.New("credstore: access key not found")
	ErrUnavailable = errors.New("credstore: store unavailable")
)

// Backend is where credentials live.
type Backend interface {
	// Get returns the record for accessKey, ErrNotFound, or an error
	// wrapping ErrUnavailable.
	Get(ctx context.Context, accessKey string) (Record, error)
}

// MaxAccessKeyLen is the longest access key a record may have: a longer
// one in a request names no credential.
const MaxAccessKeyLen = 128

// Validate reports what is wrong with r, for writers of the store.
func (r *Record) Validate() error {
	switch {
	case r.AccessKey == "":
		return errors.New("access key is empty")
	case len(r.AccessKey) > MaxAccessKeyLen:
		return errors.New("access key is longer than 128 bytes")
	case r.Secret == "":
		return errors.New("secret is empty")
	case r.UserID == "":
		return errors.New("user id is empty")
	case r.ProjectID == "":
		return errors.New("project id is empty")
	}
	return nil
}

// checkUpdated checks the record an Update's fn returned for accessKey.
func checkUpdated(accessKey string, r Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	if r.AccessKey != accessKey {
		return fmt.Errorf("credstore: Update of %s returned the record of %s", accessKey, r.AccessKey)
	}
	return nil
}
