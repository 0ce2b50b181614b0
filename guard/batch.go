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
type batcher struct {
	client    redis.UniversalClient
	maxFlight int           // pipelines in flight at once
	maxBatch  int           // commands per pipeline
	maxQueue  int           // commands waiting
	maxWait   time.Duration // in the queue, before being sent

	mu      sync.Mutex
	queue   []*call
	flights int
}

// call is one command waiting for its batch.
type call struct {
	cmd    redis.Cmder
	queued time.Time
	done   chan struct{}
}

var errQueueFull = errors.New("too many commands waiting for Redis")

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func newBatcher(client redis.UniversalClient) *batcher {
	return &batcher{client: client, maxFlight: 4, maxBatch: 256, maxQueue: 16384, maxWait: roundTripBound(client)}
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
		go b.flush()
	}
	b.mu.Unlock()
	<-c.done
	c.cmd = nil
	callPool.Put(c)
	return cmd.Err()
}

// flush sends what is queued, then what queued meanwhile, until the queue
// is empty.
func (b *batcher) flush() {
	var batch []*call
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.maxBatch)
		if n == 0 {
			b.flights--
			b.mu.Unlock()
			return
		}
		batch = append(batch[:0], b.queue[:n]...)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()

		pipe := b.client.Pipeline()
		stale := time.Now().Add(-b.maxWait)
		for _, c := range batch {
			if c.queued.Before(stale) {
				c.cmd.SetErr(fmt.Errorf("waited %v for a Redis round trip", b.maxWait))
				continue
			}
			_ = pipe.Process(context.Background(), c.cmd)
		}
		_, _ = pipe.Exec(context.Background()) // each command keeps its own error
		for i, c := range batch {
			batch[i] = nil
			c.done <- struct{}{}
		}
	}
}

// run runs script through the batch (EVALSHA), loading it first if Redis
// does not have it (once per Redis start), and returns its integer answer.
func (b *batcher) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (int64, error) {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmd := redis.NewCmd(ctx, append(cmdArgs, args...)...)
	if err := b.do(cmd); redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmd = script.Run(ctx, b.client, keys, args...)
	}
	return cmd.Int64()
}
