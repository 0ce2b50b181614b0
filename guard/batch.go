package guard

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends the commands of concurrent requests to Redis together, one
// pipeline per round trip (group commit). Replay protection and the shared
// rate limit each need a command per request; sent one by one, each costs
// a proxy about as much CPU as the rest of the request (a write, a read, a
// poller wake-up and go-redis's pool check), so under load they would
// halve throughput. A request waits for at most the round trip in flight
// and its own: with nothing in flight its command leaves at once.
type batcher struct {
	client    redis.UniversalClient
	maxFlight int // pipelines in flight at once
	maxBatch  int // commands per pipeline

	mu      sync.Mutex
	queue   []*call
	flights int
}

// call is one command waiting for its batch.
type call struct {
	cmd  redis.Cmder
	done chan struct{}
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func newBatcher(client redis.UniversalClient) *batcher {
	return &batcher{client: client, maxFlight: 4, maxBatch: 256}
}

// do runs cmd in the next pipeline and returns its error (cmd holds the
// result). The pipeline runs with the Redis client's own timeouts, not
// ctx's: it carries other requests' commands too.
func (b *batcher) do(cmd redis.Cmder) error {
	c := callPool.Get().(*call)
	c.cmd = cmd
	b.mu.Lock()
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
		for _, c := range batch {
			_ = pipe.Process(context.Background(), c.cmd)
		}
		_, _ = pipe.Exec(context.Background()) // each command keeps its own error
		for i, c := range batch {
			batch[i] = nil
			c.done <- struct{}{}
		}
	}
}
