package proxy

import (
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// A flood of failed connections (fasthttp logs one line each) logs at most
// fasthttpLinesPerSecond lines a second, and the next line says how many
// were dropped.
func TestFasthttpLogLinesAreLimited(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	now := time.Unix(1_800_000_000, 0)
	z := newZapPrintf(zap.New(core))
	z.now = func() time.Time { return now }
	for range 1000 {
		z.Printf("error when serving connection %q<->%q: %v", "a", "b", "tls: first record does not look like a TLS handshake")
	}
	if n := logs.Len(); n != fasthttpLinesPerSecond {
		t.Fatalf("%d lines logged for 1000 in one second; want %d", n, fasthttpLinesPerSecond)
	}
	now = now.Add(time.Second)
	z.Printf("one more: %d", 1)
	all := logs.TakeAll()
	last := all[len(all)-1]
	if last.Message != "fasthttp: one more: 1" || last.ContextMap()["fasthttp_lines_dropped_before"] != int64(1000-fasthttpLinesPerSecond) {
		t.Errorf("the line after the flood: %q %v; want it to count %d dropped", last.Message, last.ContextMap(), 1000-fasthttpLinesPerSecond)
	}
	z.Printf("quiet again")
	if e := logs.TakeAll(); len(e) != 1 || len(e[0].Context) != 0 {
		t.Errorf("a line after the count was reported: %v", e)
	}
}
