package guard

import (
	"context"
	"testing"
	"time"
)

// A limited first try whose answer is late stays limited when go-redis
// sends the script again (found by a review: the marker held the call's
// nonce whatever the verdict, and the retry read it as "admitted", so a
// slow Redis let requests over the fleet rate limit through).
func TestSlowRedisLimitedRetryStaysLimited(t *testing.T) {
	_, prefix := testRedis(t, "review-limited-retry")
	p := startSlowOnce(t, 800*time.Millisecond)
	shared := NewRedis(p.client(t), prefix)
	adm := shared.NewAdmission(shared.NewRateLimit(0.001, 1, 100)) // one request, then limited for ~1000 s
	ctx := context.Background()
	if v, err := adm.Admit(ctx, []byte("AK"), "first", time.Minute); v != Admitted || err != nil {
		t.Fatalf("first: %v %v", v, err)
	}
	if v, err := adm.Admit(ctx, []byte("AK"), "second", time.Minute); v != Limited || err != nil {
		t.Fatalf("second (prompt answer): %v %v; want Limited", v, err)
	}
	p.armed.Store(true)
	if v, err := adm.Admit(ctx, []byte("AK"), "third", time.Minute); err == nil && v == Admitted {
		t.Errorf("a request over the rate limit whose answer was late is Admitted")
	}
}
