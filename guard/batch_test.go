package guard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// pipelineRecorder is a go-redis hook that records the size of every
// pipeline of replay-marker scripts (not the client's own connection
// set-up) and
// can hold the first one until released.
type pipelineRecorder struct {
	mu      sync.Mutex
	sizes   []int
	hold    chan struct{} // the first pipeline waits for it to close
	holding chan struct{} // closed when the first pipeline is held
}

func (r *pipelineRecorder) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *pipelineRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (r *pipelineRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() != "evalsha" {
			return next(ctx, cmds)
		}
		r.mu.Lock()
		r.sizes = append(r.sizes, len(cmds))
		first := len(r.sizes) == 1
		r.mu.Unlock()
		if first && r.hold != nil {
			close(r.holding)
			<-r.hold
		}
		return next(ctx, cmds)
	}
}

// heldRedis is a Redis guard on the test Redis whose batcher sends one
// pipeline at a time, the first of which waits for rec.hold to close.
func heldRedis(t *testing.T, name string) (*Redis, *pipelineRecorder) {
	client, prefix := testRedis(t, name)
	rec := &pipelineRecorder{hold: make(chan struct{}), holding: make(chan struct{})}
	client.AddHook(rec)
	r := NewRedis(client, prefix)
	r.batch.maxFlight = 1
	return r, rec
}

// ak is the access key the tests' replay markers belong to.
var ak = []byte("AKTEST")

func (b *batcher) state() (queued, flights int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue), b.flights
}

func (b *batcher) queued() int {
	n, _ := b.state()
	return n
}

// Commands that arrive while a pipeline is in flight leave together in the
// next one, at most maxBatch at a time, and each caller gets its own
// command's answer.
func TestBatcherGroupsWaitingCommands(t *testing.T) {
	r, rec := heldRedis(t, "batch")
	r.batch.maxBatch = 16
	ctx := context.Background()

	results := make([]bool, 51)
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	use := func(i int, hash string) {
		defer wg.Done()
		results[i], errs[i] = r.FirstUse(ctx, ak, hash, time.Minute)
	}
	wg.Add(1)
	go use(0, "sig-0")
	<-rec.holding // the only flight is now in progress
	for i := 1; i < len(results); i++ {
		wg.Add(1)
		go use(i, fmt.Sprintf("sig-%d", i%25)) // sig-1 .. sig-24 twice, sig-0 again
	}
	for deadline := time.Now().Add(10 * time.Second); r.batch.queued() < len(results)-1; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d commands queued behind the held pipeline", r.batch.queued())
		}
		time.Sleep(time.Millisecond)
	}
	close(rec.hold)
	wg.Wait()

	if want := []int{1, 16, 16, 16, 2}; !slices.Equal(rec.sizes, want) {
		t.Errorf("pipeline sizes %v, want %v", rec.sizes, want)
	}
	firsts := map[string]int{}
	for i, ok := range results {
		if errs[i] != nil {
			t.Fatalf("FirstUse %d: %v", i, errs[i])
		}
		if ok {
			firsts[fmt.Sprintf("sig-%d", i%25)]++
		}
	}
	if len(firsts) != 25 {
		t.Errorf("%d signatures accepted once, want 25: %v", len(firsts), firsts)
	}
	for hash, n := range firsts {
		if n != 1 {
			t.Errorf("%s accepted %d times", hash, n)
		}
	}
	// The flusher finds the queue empty and ends just after its last answers.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		queued, flights := r.batch.state()
		if queued == 0 && flights == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the burst: %d flights, %d queued; want none", flights, queued)
		}
	}
}

// With Redis unreachable every caller gets an error promptly (replay
// protection fails closed on it), none waits forever.
func TestBatcherRedisDown(t *testing.T) {
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	defer down.Close()
	r := NewRedis(down, "x:")
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range cap(errs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := r.FirstUse(context.Background(), ak, fmt.Sprint(i), time.Minute)
			if first {
				err = fmt.Errorf("first use accepted with Redis down (err %v)", err)
			}
			errs <- err
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("callers still waiting 30 s after Redis refused connections")
	}
	close(errs)
	for err := range errs {
		if err == nil {
			t.Error("FirstUse with Redis down: no error")
		}
	}
}

// A Redis that accepts connections and never answers: callers fail after
// about the client's timeouts, not after every batch queued before theirs
// has timed out in turn.
func TestBatcherRedisHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }() // until the client hangs up
		}
	}()
	const timeout = 150 * time.Millisecond
	client := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), ReadTimeout: timeout, WriteTimeout: timeout, MaxRetries: -1})
	defer client.Close()
	r := NewRedis(client, "x:")
	if r.batch.maxWait != 2*timeout {
		t.Fatalf("maxWait %v, want the client's read + write timeouts", r.batch.maxWait)
	}
	r.batch.maxFlight, r.batch.maxBatch = 1, 2 // 20 callers: 10 pipelines one after another, unbounded

	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.FirstUse(context.Background(), ak, fmt.Sprint(i), time.Minute); err == nil {
				t.Error("FirstUse answered by a Redis that never answers")
			}
			mu.Lock()
			slowest = max(slowest, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Queued up to maxWait, then at most one pipeline's timeout, with slack
	// for a busy machine; without the bound the last caller waits ~10 × 150 ms.
	if limit := 2*timeout + 2*timeout + 300*time.Millisecond; slowest > limit {
		t.Errorf("the slowest caller waited %v, want under %v", slowest, limit)
	}
}

// Beyond maxQueue waiting commands a new one is refused at once.
func TestBatcherQueueFull(t *testing.T) {
	r, rec := heldRedis(t, "batch-full")
	r.batch.maxQueue = 3
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(4)
	go func() { defer wg.Done(); _, _ = r.FirstUse(ctx, ak, "held", time.Minute) }()
	<-rec.holding
	for i := range 3 {
		go func() { defer wg.Done(); _, _ = r.FirstUse(ctx, ak, fmt.Sprint(i), time.Minute) }()
	}
	for deadline := time.Now().Add(10 * time.Second); r.batch.queued() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d commands queued", r.batch.queued())
		}
	}
	if _, err := r.FirstUse(ctx, ak, "one too many", time.Minute); !errors.Is(err, errQueueFull) {
		t.Errorf("FirstUse with a full queue: %v, want errQueueFull", err)
	}
	close(rec.hold)
	wg.Wait()
}

// Pipelines one after another reuse the same worker goroutine (one started
// per pipeline would grow its stack through go-redis every time), and an
// idle worker exits after idleFor.
func TestBatcherWorkersReusedThenExit(t *testing.T) {
	client, prefix := testRedis(t, "batch-workers")
	r := NewRedis(client, prefix)
	r.batch.idleFor = 200 * time.Millisecond
	ctx := context.Background()
	for i := range 50 {
		if _, err := r.FirstUse(ctx, ak, fmt.Sprint("seq", i), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	r.batch.mu.Lock()
	started, idle := r.batch.started, r.batch.idle
	r.batch.mu.Unlock()
	if started != 1 || idle != 1 {
		t.Errorf("after 50 commands one at a time: %d workers started, %d idle; want 1 and 1", started, idle)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.batch.mu.Lock()
		idle, flights := r.batch.idle, r.batch.flights
		r.batch.mu.Unlock()
		if idle == 0 && flights == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers still there long after idleFor: %d idle, %d in flight", idle, flights)
		}
	}
	// A command after the workers left starts one again.
	if _, err := r.FirstUse(ctx, ak, "after", time.Minute); err != nil {
		t.Fatal(err)
	}
	r.batch.mu.Lock()
	started = r.batch.started
	r.batch.mu.Unlock()
	if started != 2 {
		t.Errorf("%d workers started in all; want 2", started)
	}
}
