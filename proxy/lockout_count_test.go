package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/guard"
)

// slowShared is a shared lockout store (Redis) whose AddFailure answers
// once two failures are on their way (a round trip during which a second
// failure of a parallel brute force arrives), or after a second.
type slowShared struct {
	mu     sync.Mutex
	fails  map[string]map[string]bool
	lock   map[string]time.Time
	locks  int
	inside sync.WaitGroup
	armed  atomic.Bool
}

func (s *slowShared) AddFailure(_ context.Context, key, fp string, _ time.Duration) (int, time.Time, error) {
	if s.armed.Load() {
		s.inside.Done()
		done := make(chan struct{})
		go func() { s.inside.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails[key] == nil {
		s.fails[key] = map[string]bool{}
	}
	s.fails[key][fp] = true
	return len(s.fails[key]), s.lock[key], nil
}

func (s *slowShared) Lock(_ context.Context, key string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locks++
	s.lock[key] = until
	return nil
}

// Two failed signatures in flight at once, both reaching max_failures, set
// one lock, counted and logged once (ec2proxy_lockouts_total: "locks set
// after too many failures"); each was counted and logged as a lock of its
// own (found by a review).
func TestConcurrentFailuresCountOneLockout(t *testing.T) {
	shared := &slowShared{fails: map[string]map[string]bool{}, lock: map[string]time.Time{}}
	shared.inside.Add(2)
	h := newHarness(t, withGuards(func(*configs.Config) Guards {
		return Guards{Lockout: guard.NewLockout(guard.LockoutConfig{MaxFailures: 2, Window: time.Minute, Duration: time.Hour}, shared)}
	}))
	// one failure first; the next two, in flight together, each reach max_failures (2)
	first := signed("POST", h.host(), "/", "wrong", map[string]string{"Version": "v0"}).Encode()
	wantEC2Error(t, h.post(first, nil), 403, "SignatureDoesNotMatch", "")
	shared.armed.Store(true)
	var wg sync.WaitGroup
	for i := 1; i <= 2; i++ {
		form := signed("POST", h.host(), "/", "wrong", map[string]string{"Version": fmt.Sprint("v", i)}).Encode()
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(h.url+"/", "application/x-www-form-urlencoded; charset=utf-8", strings.NewReader(form))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	logged := 0
	for _, e := range h.logs.All() {
		if e.Message == "locked after too many failures" {
			logged++
		}
	}
	body := metricsText(t, h)
	if !strings.Contains(body, `ec2proxy_lockouts_total{kind="access_key"} 1`) || logged != 1 || shared.locks != 1 {
		t.Errorf("one lock set; counted as: %q, logged %d times, Lock called %d times",
			grepLine(body, "ec2proxy_lockouts_total"), logged, shared.locks)
	}
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}
