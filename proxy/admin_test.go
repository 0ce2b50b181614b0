package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// /readyz says which dependency fails; and its checks do not run under the
// context of the probe that started them, whose result every probe reads
// for a second: one that gave up cancelled them, and a healthy replica
// answered 503 to every probe (found by a review).
func TestReadyz(t *testing.T) {
	var healthy atomic.Bool
	keystone := ReadyCheck{Name: "keystone", Check: func(ctx context.Context) error {
		select {
		case <-time.After(200 * time.Millisecond): // well within the 2 s budget
		case <-ctx.Done():
			return ctx.Err()
		}
		if !healthy.Load() {
			return errors.New("Keystone does not answer")
		}
		return nil
	}}
	srv := httptest.NewServer(NewAdminHandler(prometheus.NewRegistry(), []ReadyCheck{keystone}))
	defer srv.Close()
	get := func() (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != 503 || body != "keystone: Keystone does not answer\n" {
		t.Errorf("failing: %d %q", code, body)
	}
	time.Sleep(1100 * time.Millisecond) // past the cached result
	healthy.Store(true)
	impatient := &http.Client{Timeout: 50 * time.Millisecond}
	if resp, err := impatient.Get(srv.URL + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatal("the impatient probe was answered")
	}
	if code, body := get(); code != 200 || body != "keystone: ok\n" {
		t.Errorf("healthy, after a probe that gave up: %d %q", code, body)
	}
}
