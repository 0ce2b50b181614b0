package credstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Found by a review: a `creds disable`/`creds rotate` (Update, WATCHed)
// that landed while `creds reencrypt` was between its scan's HGETALL of a
// record and its rewrite of that record was undone: Reencrypt wrote back
// the record as it had read it. The progress callback runs exactly in that
// gap (after the 1000th record was read, before it is rewritten), so it
// stands in for the concurrent CLI command.
func TestReencryptKeepsConcurrentDisableAndRotate(t *testing.T) {
	plain, client := newTestRedis(t)
	ctx := context.Background()
	for i := range 1000 {
		if err := plain.Put(ctx, Record{AccessKey: fmt.Sprintf("AK%04d", i), Secret: "leaked", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	ring, _ := LoadKeyring(writeKey(t, "k1"))
	s := NewRedis(client, plain.prefix, ring)
	_, err := s.Reencrypt(ctx, func(int) {
		// The operator disables and rotates every key (as `creds disable`
		// and `creds rotate` do: Update, under WATCH).
		for i := range 1000 {
			ak := fmt.Sprintf("AK%04d", i)
			if err := s.Update(ctx, ak, func(cur Record, _ bool) (Record, error) {
				cur.Enabled, cur.Secret = false, "rotated"
				return cur, nil
			}); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	s.List(ctx, func(r Record, err error) error {
		if err != nil {
			t.Errorf("%s: %v", r.AccessKey, err)
		} else if r.Enabled || r.Secret != "rotated" {
			t.Errorf("%s after reencrypt: enabled=%v secret=%q; want the concurrent disable and rotation kept", r.AccessKey, r.Enabled, r.Secret)
		}
		return nil
	})
}

// The same gap with `creds delete`: the deleted credential came back.
func TestReencryptKeepsConcurrentDelete(t *testing.T) {
	plain, client := newTestRedis(t)
	ctx := context.Background()
	for i := range 1000 {
		plain.Put(ctx, Record{AccessKey: fmt.Sprintf("AK%04d", i), Secret: "s", UserID: "u", ProjectID: "p", Enabled: true})
	}
	ring, _ := LoadKeyring(writeKey(t, "k1"))
	s := NewRedis(client, plain.prefix, ring)
	if _, err := s.Reencrypt(ctx, func(int) {
		for i := range 1000 {
			s.Delete(ctx, fmt.Sprintf("AK%04d", i))
		}
	}); err != nil {
		t.Fatal(err)
	}
	s.List(ctx, func(r Record, _ error) error {
		t.Errorf("%s exists after it was deleted during reencrypt", r.AccessKey)
		return nil
	})
}

// Re-sealing a secret changes nothing a proxy caches, yet Reencrypt
// (through Put -> changed) deleted every shared Keystone token and
// published a change event per record: every replica then forgot every
// token (app.go watchChanges -> Proxy.Invalidate -> Client.Forget).
func TestReencryptKeepsSharedTokens(t *testing.T) {
	plain, client := newTestRedis(t)
	ctx := context.Background()
	sub := client.Subscribe(ctx, plain.EventsChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	keys := []string{"AK1", "AK2", "AK3"}
	for _, ak := range keys {
		plain.Put(ctx, Record{AccessKey: ak, Secret: "s-" + ak, UserID: "u", ProjectID: "p", Enabled: true})
	}
	drain := time.After(200 * time.Millisecond)
	for done := false; !done; {
		select {
		case <-sub.Channel():
		case <-drain:
			done = true
		}
	}
	ring, _ := LoadKeyring(writeKey(t, "k1"))
	s := NewRedis(client, plain.prefix, ring)
	for _, ak := range keys {
		if err := s.PutToken(ctx, ak, []byte(`{"Token":"tok-`+ak+`"}`), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Reencrypt(ctx, nil); err != nil || n != 3 {
		t.Fatalf("Reencrypt = %d, %v", n, err)
	}
	for _, ak := range keys {
		if tok, err := s.GetToken(ctx, ak); err != nil || tok == nil {
			t.Errorf("shared token of %s after reencrypt: %q, %v; want it kept (the credential did not change)", ak, tok, err)
		}
	}
	events := 0
	timeout := time.After(500 * time.Millisecond)
	for done := false; !done; {
		select {
		case m := <-sub.Channel():
			events++
			t.Logf("event after reencrypt: %q", m.Payload)
		case <-timeout:
			done = true
		}
	}
	if events > 0 {
		t.Errorf("reencrypt published %d change events: every replica forgets those keys' tokens", events)
	}
}

// Found by a review: one record Reencrypt could not read (sealed with a key
// since dropped, or damaged) stopped it, so no other secret was re-sealed
// and key rotation stalled until someone found and deleted that record. It
// is now left as it is, every other record is re-sealed, and the error
// names each unreadable one.
func TestReencryptGoesOnPastUnreadableRecords(t *testing.T) {
	plain, client := newTestRedis(t)
	ctx := context.Background()
	k1, k2 := writeKey(t, "k1"), writeKey(t, "k2")
	ring1, _ := LoadKeyring(k1)
	s1 := NewRedis(client, plain.prefix, ring1)
	for i := range 30 {
		if err := s1.Put(ctx, Record{AccessKey: fmt.Sprintf("AK%02d", i), Secret: fmt.Sprintf("s%02d", i), UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	// AK00 sealed with a key nobody kept; AK01 damaged.
	lost, _ := LoadKeyring(writeKey(t, "lost"))
	if err := NewRedis(client, plain.prefix, lost).Put(ctx, Record{AccessKey: "AK00", Secret: "gone", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := client.HSet(ctx, s1.Key("AK01"), "secret_enc", "v1:garbage").Err(); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, ak := range []string{"AK00", "AK01"} {
		before[ak] = client.HGet(ctx, s1.Key(ak), "secret_enc").Val()
	}

	ring21, _ := LoadKeyring(k2, k1)
	n, err := NewRedis(client, plain.prefix, ring21).Reencrypt(ctx, nil)
	var unreadable *UnreadableError
	if !errors.As(err, &unreadable) || unreadable.Count != 2 || n != 28 {
		t.Fatalf("Reencrypt = %d, %v; want 28 re-sealed and an UnreadableError for 2", n, err)
	}
	for _, want := range []string{"2 record(s) could not be read", "secret_enc of AK00", "secret_enc of AK01"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, ErrNoKey) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("errors.Is(%v, ErrNoKey / ErrCorrupt) = false; want both found", err)
	}
	for ak, was := range before {
		if now := client.HGet(ctx, s1.Key(ak), "secret_enc").Val(); now != was {
			t.Errorf("%s changed from %q to %q; an unreadable record must be left as it is", ak, was, now)
		}
	}
	ring2, _ := LoadKeyring(k2) // k1 dropped: the 28 must read with k2 alone
	s2 := NewRedis(client, plain.prefix, ring2)
	for i := 2; i < 30; i++ {
		if r, err := s2.Get(ctx, fmt.Sprintf("AK%02d", i)); err != nil || r.Secret != fmt.Sprintf("s%02d", i) {
			t.Errorf("AK%02d with the new key only: %+v, %v", i, r, err)
		}
	}
}

// More unreadable records than the error lists: it says how many more.
func TestUnreadableErrorListsTheFirst(t *testing.T) {
	var e UnreadableError
	for i := range maxListed + 5 {
		e.add(fmt.Errorf("secret_enc of AK%d: %w", i, ErrCorrupt))
	}
	if msg := e.Error(); !strings.HasPrefix(msg, "25 record(s)") || !strings.HasSuffix(msg, "... and 5 more") || strings.Count(msg, "\n") != maxListed+1 {
		t.Errorf("Error() = %q", msg)
	}
}
