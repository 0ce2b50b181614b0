package keystoneclient

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Found by a review: a Forget of one access key stopped the sharing of
// every other key's token being exchanged at the time (c.forgets was one
// counter for all keys): while change events streamed (creds reencrypt, a
// large sync), replicas stopped sharing tokens and each exchanged for
// itself.
func TestForgetOfAnotherKeyKeepsSharing(t *testing.T) {
	f, srv := newFakeKeystone(t)
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	shared := &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}
	replica := func() *Client {
		c, err := New(Config{AuthURL: srv.URL, Username: "ec2proxy", Password: "svcpass", Timeout: time.Second,
			TokenMargin: 5 * time.Minute, Now: clock.now, Shared: shared})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := replica(), replica()
	f.set(func(f *fakeKeystone) { f.ec2Delay = 300 * time.Millisecond })
	done := make(chan struct{})
	go func() { defer close(done); a.Identity(context.Background(), "AK", key) }()
	time.Sleep(100 * time.Millisecond)
	unrelated := "UNRELATED"
	for i := 0; a.forgetsOf(unrelated) == a.forgetsOf("AK"); i++ {
		unrelated = fmt.Sprint("UNRELATED", i) // keys in one slot share less, by design
	}
	a.Forget(unrelated) // a change event about another access key
	<-done
	if tok, _ := shared.GetToken(context.Background(), "AK"); tok == nil {
		t.Error("AK's token was not shared: an unrelated key's Forget landed during its exchange")
	}
	before := f.ec2Calls.Load()
	f.set(func(f *fakeKeystone) { f.ec2Delay = 0 })
	if _, err := b.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	if n := f.ec2Calls.Load() - before; n != 0 {
		t.Errorf("replica b made %d ec2tokens call(s) for AK; want 0 (replica a's token shared)", n)
	}
}
