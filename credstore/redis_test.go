package credstore

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/test/testenv"
)

func newTestRedis(t *testing.T) (*Redis, *redis.Client) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t), ClientName: t.Name()})
	t.Cleanup(func() { client.Close() })
	prefix := "ec2proxy-test:" + t.Name() + ":"
	t.Cleanup(func() {
		keys, _ := client.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
	})
	return NewRedis(client, prefix, nil), client
}

func TestRedisRoundTrip(t *testing.T) {
	s, client := newTestRedis(t)
	ctx := context.Background()
	created := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	want := Record{AccessKey: "AK", Secret: "SK", UserID: "u", ProjectID: "p", TrustID: "tr", Enabled: true,
		CreatedAt: created, UserName: "alice", Roles: []string{"member", "reader"}}
	if err := s.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "AK")
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != "SK" || got.UserID != "u" || got.ProjectID != "p" || got.TrustID != "tr" || !got.Enabled ||
		!got.CreatedAt.Equal(created) || got.UserName != "alice" || len(got.Roles) != 2 {
		t.Errorf("Get = %+v; want %+v", got, want)
	}
	// The documented schema: one hash, braces as a cluster hash tag.
	fields, err := client.HGetAll(ctx, s.Key("AK")).Result()
	if err != nil || fields["secret"] != "SK" || fields["enabled"] != "1" || fields["created_at"] != "2026-11-25T10:00:00Z" {
		t.Errorf("hash %s = %v, %v", s.Key("AK"), fields, err)
	}
	if key := s.Key("AK"); key != "ec2proxy-test:"+t.Name()+":cred:{AK}" {
		t.Errorf("Key = %q", key)
	}
	// Put replaces: a field left empty disappears.
	want.TrustID, want.Enabled = "", false
	if err := s.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "AK"); got.TrustID != "" || got.Enabled {
		t.Errorf("after replace: %+v", got)
	}
	if err := s.Delete(ctx, "AK"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "AK"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v; want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "AK"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v; want ErrNotFound", err)
	}
}

func TestRedisCorruptRecord(t *testing.T) {
	s, client := newTestRedis(t)
	client.HSet(context.Background(), s.Key("AK"), "user_id", "u")
	if _, err := s.Get(context.Background(), "AK"); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Get(half-written) = %v; want ErrCorrupt", err)
	}
}

func TestRedisPutValidates(t *testing.T) {
	s, _ := newTestRedis(t)
	if err := s.Put(context.Background(), Record{AccessKey: "AK"}); err == nil {
		t.Error("Put accepted a record without secret")
	}
}

// Redis that is down must be "unavailable" (a 503), never "not found" (a
// 403/401), and must answer within the timeouts.
func TestRedisDownIsUnavailable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: 200 * time.Millisecond, MaxRetries: 1, DialerRetries: 1, DialerRetryTimeout: 50 * time.Millisecond})
	defer client.Close()
	s := NewRedis(client, "x:", nil)
	start := time.Now()
	_, err := s.Get(context.Background(), "AK")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("Get = %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	if err := s.Ping(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Ping = %v; want ErrUnavailable", err)
	}
}

// Update reads, asks fn and writes atomically: a change made between its
// read and its write makes it ask fn again, with the changed record, so
// the change is not undone (creds sync against a creds disable).
func TestRedisUpdate(t *testing.T) {
	s, client := newTestRedis(t)
	ctx := context.Background()
	rec := Record{AccessKey: "UPD", Secret: "s1", UserID: "u", ProjectID: "p", Enabled: true, Source: "keystone"}
	err := s.Update(ctx, "UPD", func(cur Record, exists bool) (Record, error) {
		if exists {
			t.Errorf("a missing record passed as existing: %+v", cur)
		}
		return rec, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = s.Update(ctx, "UPD", func(cur Record, exists bool) (Record, error) {
		calls++
		if calls == 1 { // another command disables it meanwhile
			if err := client.HSet(ctx, s.Key("UPD"), "enabled", "0").Err(); err != nil {
				t.Fatal(err)
			}
		}
		next := cur
		next.Secret = "s2"
		return next, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "UPD")
	if err != nil || calls != 2 || got.Secret != "s2" || got.Enabled {
		t.Errorf("after a change between read and write: %+v %v, fn asked %d times; want s2, disabled, asked twice", got, err, calls)
	}
	if err := s.Update(ctx, "UPD", func(Record, bool) (Record, error) { return Record{}, ErrNotFound }); !errors.Is(err, ErrNotFound) {
		t.Errorf("fn's error: %v", err)
	}
	if err := s.Update(ctx, "UPD", func(cur Record, _ bool) (Record, error) { cur.AccessKey = "OTHER"; return cur, nil }); err == nil {
		t.Error("an Update that returned another key's record was written")
	}
}

// Update does not rewrite a record it cannot read, and says why (found by
// a review: "secret is empty" instead of the missing key).
func TestRedisUpdateRefusesUnreadable(t *testing.T) {
	_, client := newTestRedis(t)
	prefix := "ec2proxy-test:" + t.Name() + ":"
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte(GenerateKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := NewRedis(client, prefix, ring).Put(ctx, Record{AccessKey: "K1", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	called := false
	err = NewRedis(client, prefix, nil).Update(ctx, "K1", func(cur Record, _ bool) (Record, error) { called = true; cur.Enabled = false; return cur, nil })
	if !errors.Is(err, ErrNoKey) || called {
		t.Errorf("Update of a record sealed with a key not configured: %v (fn called: %v); want ErrNoKey, fn not asked", err, called)
	}
}

// DeleteIf removes a record only as remove judges it when it is removed:
// a change between its read and its delete makes it ask again (creds sync
// removing a Keystone credential that was just re-created here).
func TestRedisDeleteIf(t *testing.T) {
	s, client := newTestRedis(t)
	ctx := context.Background()
	put := func() {
		t.Helper()
		if err := s.Put(ctx, Record{AccessKey: "DEL", Secret: "s", UserID: "u", ProjectID: "p", Enabled: true, Source: "keystone"}); err != nil {
			t.Fatal(err)
		}
	}
	fromKeystone := func(cur Record, err error) bool { return err == nil && cur.Source == "keystone" }
	if _, err := s.DeleteIf(ctx, "DEL", fromKeystone); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteIf of a missing record: %v, want ErrNotFound", err)
	}
	put()
	calls := 0
	deleted, err := s.DeleteIf(ctx, "DEL", func(cur Record, err error) bool {
		calls++
		if calls == 1 { // made local meanwhile
			if err := client.HSet(ctx, s.Key("DEL"), "source", "").Err(); err != nil {
				t.Fatal(err)
			}
		}
		return fromKeystone(cur, err)
	})
	if _, gerr := s.Get(ctx, "DEL"); deleted || err != nil || calls != 2 || gerr != nil {
		t.Fatalf("a record changed under DeleteIf: deleted %v (%v), remove asked %d times, Get: %v; want kept, asked twice", deleted, err, calls, gerr)
	}
	put()
	if deleted, err := s.DeleteIf(ctx, "DEL", fromKeystone); !deleted || err != nil {
		t.Fatalf("DeleteIf = %v, %v; want deleted", deleted, err)
	}
	if _, err := s.Get(ctx, "DEL"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after DeleteIf, Get: %v", err)
	}
	// A record that cannot be read is judged on what can be.
	if err := client.HSet(ctx, s.Key("HALF"), "source", "keystone", "user_id", "u").Err(); err != nil {
		t.Fatal(err)
	}
	var seen error
	deleted, err = s.DeleteIf(ctx, "HALF", func(cur Record, err error) bool { seen = err; return cur.Source == "keystone" })
	if !deleted || err != nil || !errors.Is(seen, ErrCorrupt) {
		t.Errorf("DeleteIf of a corrupt record: deleted %v (%v), remove given %v; want deleted, given ErrCorrupt", deleted, err, seen)
	}
}
