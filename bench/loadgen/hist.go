package main

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram over nanoseconds: values below
// 2^subBits are exact, above that each power of two is split into
// 2^subBits buckets, so a recorded value is off by at most 1/128 (0.8%).
// Record is a few integer operations and never allocates, which keeps the
// generator's own cost out of the latencies it measures.
type hist struct {
	counts [(maxExp - subBits + 2) << subBits]uint64
	n      uint64
	sum    uint64
	max    uint64
}

const (
	subBits = 7
	maxExp  = 40 // 2^40 ns ≈ 18 minutes; longer values are clamped
)

func bucketOf(v uint64) int {
	if v < 1<<subBits {
		return int(v)
	}
	e := bits.Len64(v) - 1
	if e > maxExp {
		e, v = maxExp, 1<<(maxExp+1)-1
	}
	sub := (v >> (e - subBits)) & (1<<subBits - 1)
	return (e-subBits+1)<<subBits + int(sub)
}

// lowerBound is the smallest value that falls in bucket i.
func lowerBound(i int) uint64 {
	if i < 1<<subBits {
		return uint64(i)
	}
	e := i>>subBits + subBits - 1
	sub := uint64(i & (1<<subBits - 1))
	return (1<<subBits + sub) << (e - subBits)
}

func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value at q (0..1): the middle of the bucket that
// holds the ceil(q·n)-th smallest value.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := lowerBound(i), lowerBound(i+1)
			return time.Duration(min(lo+(hi-lo)/2, h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}
