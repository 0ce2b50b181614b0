package keystoneclient

import (
	"context"
	"testing"
	"time"
)

// hookShared runs beforePut when PutToken is entered, before the token is
// stored: the interleaving in which a Forget lands between loadIdentity's
// forgets check and its PutToken reaching Redis.
type hookShared struct {
	*memShared
	beforePut func()
}

func (h *hookShared) PutToken(ctx context.Context, ak string, tok []byte, ttl time.Duration) error {
	if f := h.beforePut; f != nil {
		h.beforePut = nil
		f()
	}
	return h.memShared.PutToken(ctx, ak, tok, ttl)
}

// A Forget between loadIdentity's check and its put (found by a review):
// the token from before the change does not stay in the store.
func TestForgetBetweenCheckAndShare(t *testing.T) {
	_, srv := newFakeKeystone(t)
	var clock testClock
	clock.t.Store(time.Now().UnixNano())
	shared := &hookShared{memShared: &memShared{tokens: map[string][]byte{}, ttl: map[string]time.Duration{}}}
	c, err := New(Config{AuthURL: srv.URL, Username: "ec2proxy", Password: "svcpass", Timeout: time.Second,
		TokenMargin: 5 * time.Minute, Now: clock.now, Shared: shared})
	if err != nil {
		t.Fatal(err)
	}
	shared.beforePut = func() {
		shared.DeleteToken(context.Background(), "AK") // the change
		c.Forget("AK")                                 // its announcement, heard: Forget returns
	}
	if _, err := c.Identity(context.Background(), "AK", key); err != nil {
		t.Fatal(err)
	}
	if tok, _ := shared.GetToken(context.Background(), "AK"); tok != nil {
		t.Error("a token exchanged before the change is in the shared store after Forget returned")
	}
}
