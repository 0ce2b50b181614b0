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

// What replicas share through Redis besides the records:
//
//	<prefix>token:{<access key>}   the Keystone token obtained for the key,
//	                               sealed like secrets; TTL = its useful life
//	<prefix>events                 pub/sub channel: "cred <access key>" after
//	                               every change to the key's record
//
// A change (Put, Delete) removes the key's shared token and then publishes,
// so every replica drops its cached record and token.

// TokenKey is the Redis key of accessKey's shared token.
func (s *Redis) TokenKey(accessKey string) string {
	return s.prefix + "token:{" + accessKey + "}"
}

// EventsChannel is the pub/sub channel announcing changes.
func (s *Redis) EventsChannel() string { return s.prefix + "events" }

const eventCred = "cred "

// GetToken returns the token another replica shared for accessKey, or nil
// if there is none (or it cannot be opened: then the caller asks Keystone).
func (s *Redis) GetToken(ctx context.Context, accessKey string) ([]byte, error) {
	v, err := s.client.Get(ctx, s.TokenKey(accessKey)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%w: redis GET: %w", ErrUnavailable, err)
	}
	return s.openToken(accessKey, v)
}

// openToken is the token stored as v for accessKey (sealed with a keyring).
func (s *Redis) openToken(accessKey, v string) ([]byte, error) {
	if s.keyring == nil {
		return []byte(v), nil
	}
	plain, _, err := s.keyring.open("token:"+accessKey, v)
	if err != nil {
		return nil, fmt.Errorf("shared token of %s: %w", accessKey, err)
	}
	return plain, nil
}

// PutToken shares a token for ttl. Tokens are bearer secrets: with a
// keyring they are sealed, bound to the key they were issued for.
func (s *Redis) PutToken(ctx context.Context, accessKey string, token []byte, ttl time.Duration) error {
	var v any = token // go-redis writes the bytes out before Set returns
	if s.keyring != nil {
		b := sealBuffers.Get().(*sealBuffer)
		defer sealBuffers.Put(b)
		b.value = s.keyring.appendSealed(b.value[:0], &b.scratch, "token:"+accessKey, token)
		v = b.value
	}
	if err := s.client.Set(ctx, s.TokenKey(accessKey), v, ttl).Err(); err != nil {
		return fmt.Errorf("%w: redis SET: %w", ErrUnavailable, err)
	}
	return nil
}

// DeleteToken removes the shared token of accessKey.
func (s *Redis) DeleteToken(ctx context.Context, accessKey string) error {
	if err := s.client.Del(ctx, s.TokenKey(accessKey)).Err(); err != nil {
		return fmt.Errorf("%w: redis DEL: %w", ErrUnavailable, err)
	}
	return nil
}

// DeleteTokenIf removes the shared token of accessKey if stale says so of
// it (opened), atomically: a token another replica shares meanwhile is not
// removed (a GET then DEL removed it, costing that replica an exchange). An
// unreadable token is left alone. It reports whether it removed one.
func (s *Redis) DeleteTokenIf(ctx context.Context, accessKey string, stale func(token []byte) bool) (bool, error) {
	key := s.TokenKey(accessKey)
	return s.deleteWatched(ctx, key, accessKey, func(tx *redis.Tx) (bool, error) {
		v, err := tx.Get(ctx, key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("%w: redis GET: %w", ErrUnavailable, err)
		}
		plain, err := s.openToken(accessKey, v)
		return err == nil && stale(plain), nil
	})
}

// sealBuffer is PutToken's scratch: a cold start shares a token for every
// access key, and each one's copies were garbage that the GC, marking
// while the caches fill, counted as live (a higher heap goal, RSS).
type sealBuffer struct{ value, scratch []byte }

var sealBuffers = sync.Pool{New: func() any { return new(sealBuffer) }}

// changed removes the shared token of accessKey and tells every replica.
// A failure here is reported but the write it follows stands: replicas then
// see the change when their cached copy expires (credentials.cache_ttl).
func (s *Redis) changed(ctx context.Context, accessKey string) error {
	if err := s.client.Del(ctx, s.TokenKey(accessKey)).Err(); err != nil {
		return fmt.Errorf("%w: change saved, but the shared token was not removed: %w", ErrUnavailable, err)
	}
	if err := s.client.Publish(ctx, s.EventsChannel(), eventCred+accessKey).Err(); err != nil {
		return fmt.Errorf("%w: change saved, but not announced to replicas: %w", ErrUnavailable, err)
	}
	return nil
}

// WatchOptions tell Watch what to do on events.
type WatchOptions struct {
	// Changed is called with the access key of every changed record.
	Changed func(accessKey string)
	// Other is called with any other message on the channel (other
	// packages announce there too, e.g. lockouts).
	Other func(payload string)
	// Subscribed is called with false when the subscription is lost (changes
	// may then go unheard) and with true when it is back.
	Subscribed func(bool)
	// PingEvery is how often a quiet subscription is checked (default 1s);
	// after three unanswered checks it counts as lost.
	PingEvery time.Duration
}

// Watch listens for changes until ctx ends, resubscribing after failures.
// It reports Subscribed(false) at once if it cannot subscribe, so callers
// can start pessimistic and turn optimistic on Subscribed(true).
func (s *Redis) Watch(ctx context.Context, o WatchOptions) {
	if o.PingEvery <= 0 {
		o.PingEvery = time.Second
	}
	up, known := false, false
	set := func(v bool) {
		if v != up || !known {
			up, known = v, true
			if o.Subscribed != nil {
				o.Subscribed(v)
			}
		}
	}
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		ps := s.client.Subscribe(ctx, s.EventsChannel())
		lastHeard := time.Now()
		for ctx.Err() == nil {
			msg, err := ps.ReceiveTimeout(ctx, o.PingEvery)
			if err != nil {
				var ne interface{ Timeout() bool }
				if errors.As(err, &ne) && ne.Timeout() && time.Since(lastHeard) < 3*o.PingEvery {
					_ = ps.Ping(ctx) // answered by a Pong message, or an error next time
					continue
				}
				set(false)
				break
			}
			lastHeard = time.Now()
			backoff = 50 * time.Millisecond
			switch m := msg.(type) {
			case *redis.Subscription:
				set(m.Kind == "subscribe")
			case *redis.Pong:
				set(true)
			case *redis.Message:
				if access, ok := strings.CutPrefix(m.Payload, eventCred); ok {
					if o.Changed != nil {
						o.Changed(access)
					}
				} else if o.Other != nil {
					o.Other(m.Payload)
				}
			}
		}
		_ = ps.Close()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
