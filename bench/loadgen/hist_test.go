package main

import (
	"testing"
	"time"
)

func TestBucketBounds(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 987654321, 1 << 39} {
		i := bucketOf(v)
		if lo, hi := lowerBound(i), lowerBound(i+1); v < lo || v >= hi {
			t.Errorf("bucketOf(%d) = %d covering [%d, %d)", v, i, lo, hi)
		}
	}
}

func TestQuantile(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {1, 1000 * time.Microsecond}}
	for _, tt := range tests {
		got := h.quantile(tt.q)
		if diff := got - tt.want; diff < -tt.want/100 || diff > tt.want/100 {
			t.Errorf("quantile(%v) = %v; want %v ±1%%", tt.q, got, tt.want)
		}
	}
	if got := h.mean(); got != 500500*time.Nanosecond {
		t.Errorf("mean = %v; want 500.5µs", got)
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	var h hist
	if n := testing.AllocsPerRun(100, func() { h.record(1234 * time.Microsecond) }); n != 0 {
		t.Errorf("record allocates %v times", n)
	}
}
