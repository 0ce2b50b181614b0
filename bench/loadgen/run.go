package main

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Phases of a timed run; workers read the phase after every answer, so an
// answer counts if it arrived while measuring.
const (
	warming int32 = iota
	measuring
	stopped
)

type worker struct {
	c          *conn
	hists      [numKinds]hist
	status     [600]uint64 // by HTTP status; 0 for transport errors
	unexpected uint64
	retried    uint64
}

type runResult struct {
	hists         [numKinds]hist
	status        [600]uint64
	unexpected    uint64
	retried       uint64
	elapsed       time.Duration
	before, after snapshot
	sample        []byte
}

// run drives the target. With fresh, every request is signed by s just
// before it is sent; otherwise requests come from pool (once mode: pool[n]
// is for creds[n]).
func run(o *options, pool []request, s *signer, fresh bool, creds []credential, kinds []int, p *probe) *runResult {
	workers := make([]*worker, o.conns)
	for i := range workers {
		workers[i] = &worker{c: newConn(o.target)}
	}
	var phase atomic.Int32
	var next atomic.Int64 // once mode: the next request to send
	var wg sync.WaitGroup
	res := &runResult{}

	if o.once {
		phase.Store(measuring)
		res.before = p.take()
	}
	start := time.Now()
	scheduleStart := start // start moves when measuring begins
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := i * len(pool) / len(workers)
			// Open loop (-rate): worker i sends at start + i*period/conns
			// + n*period, whatever the answers take.
			var period time.Duration
			var due time.Time
			if o.rate > 0 {
				period = time.Duration(float64(len(workers)) / o.rate * float64(time.Second))
				due = scheduleStart.Add(period * time.Duration(i) / time.Duration(len(workers)))
			}
			for n := 0; ; n++ {
				// The previous answer came after this request's time:
				// its latency counts from then (no coordinated omission).
				// Otherwise from the send, not counting how late the
				// generator's own timer woke it.
				var overdue time.Time
				if period > 0 {
					if wait := time.Until(due); wait > 0 {
						time.Sleep(wait)
					} else {
						overdue = due
					}
				}
				var req *request
				var resign func(attempt int) *request
				if fresh {
					if phase.Load() == stopped {
						return
					}
					r := s.fresh(creds, kinds, i, len(workers), n)
					req = &r
				} else if o.once {
					n := next.Add(1) - 1
					if n >= int64(len(pool)) {
						return
					}
					req = &pool[n]
					// A retried request is signed again, with a nonce:
					// replay protection would refuse the same bytes.
					resign = func(attempt int) *request {
						r := s.build(creds[n], req.kind, time.Now(), "r"+strconv.FormatInt(n, 10)+"-"+strconv.Itoa(attempt))
						return &r
					}
				} else {
					if phase.Load() == stopped {
						return
					}
					req = &pool[idx]
					if idx++; idx == len(pool) {
						idx = 0
					}
				}
				w.do(req, resign, o.expect, phase.Load, o.retries, overdue)
				if period > 0 {
					due = due.Add(period)
				}
			}
		}()
	}
	if !o.once {
		time.Sleep(o.warmup)
		res.before = p.take()
		start = time.Now()
		phase.Store(measuring)
		time.Sleep(o.duration)
		phase.Store(stopped)
		res.elapsed = time.Since(start)
	}
	wg.Wait()
	if o.once {
		res.elapsed = time.Since(start)
	}
	res.after = p.take()
	for _, w := range workers {
		for k := range w.hists {
			res.hists[k].merge(&w.hists[k])
		}
		for s, n := range w.status {
			res.status[s] += n
		}
		res.unexpected += w.unexpected
		res.retried += w.retried
		if res.sample == nil {
			res.sample = w.c.sample
		}
		if w.c.c != nil {
			w.c.c.Close()
		}
	}
	return res
}

// do sends one request and records it if the run is measuring when the
// answer arrives. A 5xx answer is sent again up to retries times (once
// mode: a cold Keystone may time out the first exchanges), and only the
// last answer is recorded. Latency counts from overdue if it is set (open
// loop: a request sent late because the previous answer was slow waited
// too), else from the send. It does not allocate.
func (w *worker) do(req *request, resign func(int) *request, expect expectation, phase func() int32, retries int, overdue time.Time) {
	var status int
	var err error
	var d time.Duration
	for attempt := 0; ; attempt++ {
		if attempt > 0 && resign != nil {
			req = resign(attempt)
		}
		t0 := time.Now()
		if !overdue.IsZero() && attempt == 0 {
			t0 = overdue
		}
		status, err = w.c.roundTrip(req.raw)
		d = time.Since(t0)
		if err != nil || status < 500 || attempt >= retries {
			break
		}
		w.retried++
		time.Sleep(500 * time.Millisecond)
	}
	if phase() != measuring {
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
		return
	}
	if err != nil {
		w.status[0]++
		time.Sleep(10 * time.Millisecond) // a refused connection must not spin
		return
	}
	w.hists[req.kind].record(d)
	w.status[min(status, len(w.status)-1)]++
	if !expect.ok(status) {
		w.unexpected++
		w.c.keep()
	}
}
