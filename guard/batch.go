package guard

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of concurrent requests to Redis together, one
// pipeline per round trip (group commit). Replay protection and the shared
// rate limit each need a command per request; sent one by one, each costs
// a proxy about as much CPU as the rest of the request (a write, a read, a
// poller wake-up and go-redis's pool check), so under load they would
// halve throughput. A request waits for at most the round trip in flight
// and its own: with nothing in flight its command leaves at once.
//
// A Redis that stops answering holds each pipeline for the client's
// timeouts; requests arriving meanwhile must not queue without end, so a
// command that waited maxWait is failed without being sent, and beyond
// maxQueue waiting commands a new one fails at once.
//
// The pipelines are sent by up to maxFlight worker goroutines, which wait
// idleWorker for more work before they exit: a goroutine started per
// pipeline would grow its stack through go-redis's calls every time
// (about 2% of a busy proxy's CPU in a profile).
type batcher struct {
	client    redis.UniversalClient
	maxFlight int           // pipelines in flight at once
	maxBatch  int           // commands per pipeline
	maxQueue  int           // commands waiting
	maxWait   time.Duration // in the queue, before being sent
	idleFor   time.Duration // a worker's wait for more work

	mu      sync.Mutex
	queue   []*call
	flights int           // workers sending (or about to)
	idle    int           // workers waiting for work, not yet woken
	wake    chan struct{} // one token per idle worker woken
	started int           // workers started, ever
}

// idleWorker is how long a worker with nothing to send stays for more.
const idleWorker = time.Second

// call is one command waiting for its batch.
type call struct {
	cmd    redis.Cmder
	queued time.Time
	done   chan struct{}
}

var errQueueFull = errors.New("too many commands waiting for Redis")

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func newBatcher(client redis.UniversalClient) *batcher {
	const maxFlight = 4
	return &batcher{client: client, maxFlight: maxFlight, maxBatch: 256, maxQueue: 16384, maxWait: roundTripBound(client),
		idleFor: idleWorker, wake: make(chan struct{}, maxFlight)}
}

// roundTripBound is how long one command may take unbatched: the client's
// write and read timeouts (go-redis's 3 s default for each left unset).
func roundTripBound(client redis.UniversalClient) time.Duration {
	var read, write time.Duration
	switch c := client.(type) {
	case *redis.Client:
		read, write = c.Options().ReadTimeout, c.Options().WriteTimeout
	case *redis.ClusterClient:
		read, write = c.Options().ReadTimeout, c.Options().WriteTimeout
	}
	if read <= 0 {
		read = 3 * time.Second
	}
	if write <= 0 {
		write = read
	}
	return read + write
}

// do runs cmd in the next pipeline and returns its error (cmd holds the
// result). The pipeline runs with the Redis client's own timeouts, not
// ctx's: it carries other requests' commands too.
func (b *batcher) do(cmd redis.Cmder) error {
	c := callPool.Get().(*call)
	c.cmd, c.queued = cmd, time.Now()
	b.mu.Lock()
	if len(b.queue) >= b.maxQueue {
		b.mu.Unlock()
		c.cmd = nil
		callPool.Put(c)
		cmd.SetErr(errQueueFull)
		return errQueueFull
	}
	b.queue = append(b.queue, c)
	if b.flights < b.maxFlight {
		b.flights++
		if b.idle > 0 {
			b.idle--
			b.wake <- struct{}{} // never blocks: tokens <= idle workers <= maxFlight
		} else {
			b.started++
			go b.worker()
		}
	}
	b.mu.Unlock()
	<-c.done
	c.cmd = nil
	callPool.Put(c)
	return cmd.Err()
}

// worker sends pipelines while there is work, then waits up to idleFor to
// be woken for more.
func (b *batcher) worker() {
	var cur, next []*call
	timer := time.NewTimer(b.idleFor)
	defer timer.Stop()
	for {
		cur, next = b.flush(cur, next)
		timer.Reset(b.idleFor)
		select {
		case <-b.wake:
			continue
		case <-timer.C:
		}
		b.mu.Lock()
		select {
		case <-b.wake: // woken as the timer fired: the token is this worker's
			b.mu.Unlock()
			continue
		default:
		}
		b.idle--
		b.mu.Unlock()
		return
	}
}

// flush sends pipelines until the queue is empty; the worker then counts as
// idle. A pipeline's callers are answered only once the worker has taken
// the next batch or become idle, so that a caller's next command finds it
// rather than starting another worker. cur and next are scratch space,
// returned for reuse.
func (b *batcher) flush(cur, next []*call) ([]*call, []*call) {
	b.mu.Lock()
	cur = b.takeLocked(cur)
	b.mu.Unlock()
	for len(cur) > 0 {
		b.send(cur)
		b.mu.Lock()
		next = b.takeLocked(next)
		b.mu.Unlock()
		for i, c := range cur {
			cur[i] = nil
			c.done <- struct{}{}
		}
		cur, next = next, cur[:0]
	}
	return cur, next
}

// takeLocked moves up to maxBatch queued calls into batch. With none
// queued, the worker stops counting as in flight and counts as idle.
func (b *batcher) takeLocked(batch []*call) []*call {
	n := min(len(b.queue), b.maxBatch)
	if n == 0 {
		b.flights--
		b.idle++
		return batch[:0]
	}
	batch = append(batch[:0], b.queue[:n]...)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	return batch
}

// send runs batch as one pipeline; each command keeps its own result. A
// command that waited longer than maxWait is failed instead of sent.
func (b *batcher) send(batch []*call) {
	pipe := b.client.Pipeline()
	stale := time.Now().Add(-b.maxWait)
	for _, c := range batch {
		if c.queued.Before(stale) {
			c.cmd.SetErr(fmt.Errorf("waited %v for a Redis round trip", b.maxWait))
			continue
		}
		_ = pipe.Process(context.Background(), c.cmd)
	}
	_, _ = pipe.Exec(context.Background())
}

// run runs script through the batch (EVALSHA), loading it first if Redis
// does not have it (once per Redis start), and returns its integer answer.
// go-redis sends the batch again if Redis answers after the read timeout:
// script must then tell its own second run (see nonces), or use runOnce.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (int64, error) {
	return b.exec(ctx, false, script, keys, args)
}

// runOnce is run for a script that cannot tell its own second run: its
// batch is not sent again after a read timeout, and the call fails
// instead. The fleet rate limit's bucket took a token on each run, so a
// late answer charged every request of the batch twice (found by a
// review).
func (b *batcher) runOnce(ctx context.Context, script *redis.Script, keys []string, args ...any) (int64, error) {
	return b.exec(ctx, true, script, keys, args)
}

// onceCmd is a command go-redis does not send again (see runOnce).
type onceCmd struct{ *redis.Cmd }

func (onceCmd) NoRetry() bool { return true }

func (b *batcher) exec(ctx context.Context, once bool, script *redis.Script, keys []string, args []any) (int64, error) {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := redis.NewCmd(ctx, append(cmdArgs, args...)...)
	var sent redis.Cmder = cmd
	if once {
		sent = onceCmd{cmd}
	}
	if err := b.do(sent); redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = script.Run(ctx, b.client, keys, args...)
	}
	return cmd.Int64()
}
