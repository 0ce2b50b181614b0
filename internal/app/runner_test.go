package app

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// More listeners may end than Failed holds (one per event loop, the
// handoff server, the admin server): each report must return, the first
// ones delivered and the rest logged, not leave its goroutine blocked.
func TestFailNeverBlocks(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	r := &Runner{failed: make(chan error, 2)}
	r.current.Store(&App{Logger: zap.New(core)})
	done := make(chan struct{})
	go func() {
		for i := range 5 {
			r.fail(errors.New("listener " + string(rune('a'+i))))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("fail blocked with the channel full")
	}
	if got := (<-r.Failed()).Error(); got != "listener a" {
		t.Errorf("first delivered: %q; want listener a", got)
	}
	if n := logs.FilterMessage("a listener failed").Len(); n != 3 {
		t.Errorf("%d failures logged; want the 3 the channel had no room for", n)
	}
}
