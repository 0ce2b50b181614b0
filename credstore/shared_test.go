package credstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSharedTokenSealedAndBound(t *testing.T) {
	s, client := newTestRedis(t)
	ring, err := LoadKeyring(writeKey(t, "k"))
	if err != nil {
		t.Fatal(err)
	}
	s.keyring = ring
	ctx := context.Background()
	if tok, err := s.GetToken(ctx, "AK"); err != nil || tok != nil {
		t.Fatalf("no token yet: %q, %v", tok, err)
	}
	if err := s.PutToken(ctx, "AK", []byte(`{"token":"gAAAA-bearer"}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, _ := client.Get(ctx, s.TokenKey("AK")).Result()
	if strings.Contains(raw, "bearer") || !strings.HasPrefix(raw, "v1:") {
		t.Fatalf("token stored in the clear: %q", raw)
	}
	if ttl := client.TTL(ctx, s.TokenKey("AK")).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL %v, want ≤ 1m", ttl)
	}
	tok, err := s.GetToken(ctx, "AK")
	if err != nil || string(tok) != `{"token":"gAAAA-bearer"}` {
		t.Fatalf("GetToken = %q, %v", tok, err)
	}
	// A sealed token copied under another key does not open.
	client.Set(ctx, s.TokenKey("OTHER"), raw, time.Minute)
	if _, err := s.GetToken(ctx, "OTHER"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved token: %v, want ErrCorrupt", err)
	}
	// A change to the record removes the shared token.
	if err := s.Put(ctx, Record{AccessKey: "AK", Secret: "SK", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.GetToken(ctx, "AK"); err != nil || tok != nil {
		t.Fatalf("after Put the token is still shared: %q, %v", tok, err)
	}
}

func TestWatchHearsChanges(t *testing.T) {
	s, client := newTestRedis(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var changed []string
	subscribed := make(chan bool, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, WatchOptions{
			Changed:    func(ak string) { mu.Lock(); changed = append(changed, ak); mu.Unlock() },
			Subscribed: func(up bool) { subscribed <- up },
			PingEvery:  100 * time.Millisecond,
		})
	}()
	if up := <-subscribed; !up {
		t.Fatal("first report: not subscribed")
	}
	rec := Record{AccessKey: "AK1", Secret: "SK", UserID: "u", ProjectID: "p", Enabled: true}
	if err := s.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "AK1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(changed, ",")
		mu.Unlock()
		if got == "AK1,AK1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heard %q, want AK1,AK1", got)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Killing the subscriber's connection is noticed, and it comes back.
	ids, _ := client.ClientList(ctx).Result()
	for _, line := range strings.Split(ids, "\n") {
		if strings.Contains(line, " name="+t.Name()+" ") && strings.Contains(line, " sub=1 ") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			client.Do(ctx, "CLIENT", "KILL", "ID", id)
		}
	}
	wantReport := func(want bool) {
		t.Helper()
		select {
		case up := <-subscribed:
			if up != want {
				t.Fatalf("reported subscribed=%v, want %v", up, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("no report of subscribed=%v", want)
		}
	}
	wantReport(false)
	wantReport(true)
	cancel()
	<-done
}

// DeleteTokenIf removes a shared token only as stale judges it when it is
// removed: a token another replica shares between the read and the delete
// stays (found by a review of the token recheck: GET then DEL removed it).
func TestDeleteTokenIf(t *testing.T) {
	s, _ := newTestRedis(t)
	ring, err := LoadKeyring(writeKey(t, "k"))
	if err != nil {
		t.Fatal(err)
	}
	s.keyring = ring
	ctx := context.Background()
	is := func(want string) func([]byte) bool { return func(tok []byte) bool { return string(tok) == want } }
	if deleted, err := s.DeleteTokenIf(ctx, "AK", is("old")); deleted || err != nil {
		t.Fatalf("no token: %v, %v", deleted, err)
	}
	s.PutToken(ctx, "AK", []byte("old"), time.Minute)
	calls := 0
	deleted, err := s.DeleteTokenIf(ctx, "AK", func(tok []byte) bool {
		calls++
		if calls == 1 { // another replica shares its new token meanwhile
			s.PutToken(ctx, "AK", []byte("new"), time.Minute)
		}
		return string(tok) == "old"
	})
	if tok, _ := s.GetToken(ctx, "AK"); deleted || err != nil || calls != 2 || string(tok) != "new" {
		t.Fatalf("a token shared under DeleteTokenIf: deleted %v (%v), asked %d times, now %q; want the new one kept, asked twice", deleted, err, calls, tok)
	}
	if deleted, err := s.DeleteTokenIf(ctx, "AK", is("new")); !deleted || err != nil {
		t.Fatalf("DeleteTokenIf = %v, %v; want deleted", deleted, err)
	}
	if tok, _ := s.GetToken(ctx, "AK"); tok != nil {
		t.Errorf("after DeleteTokenIf the token is %q", tok)
	}
}
