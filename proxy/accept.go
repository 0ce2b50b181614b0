package proxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Out of file descriptors. accept(2) fails with EMFILE (the process's
// limit, RLIMIT_NOFILE) or ENFILE (the system's), and with ENOBUFS or
// ENOMEM out of socket memory, while the connection it would have taken
// stays queued on the listener. That passes as soon as a connection
// closes: both front ends wait and accept again rather than stop (the
// goroutine server, see RetryAccept) or retry at once (the event loop,
// see EventLoop.accept).

// outOfResources reports whether an accept error is a shortage of
// descriptors or socket memory, which passes once connections close.
func outOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// temporaryAccept reports whether an accept error concerns this attempt
// only: a shortage, or a connection reset while queued.
func temporaryAccept(err error) bool {
	return outOfResources(err) || errors.Is(err, syscall.ECONNABORTED)
}

// shortageLogEvery bounds the warnings: one at the start of a shortage
// (an episode: accepts failing until one succeeds), and no more than one
// in this long however often shortages come and go.
const shortageLogEvery = time.Minute

// acceptShortage logs shortages once per episode; the event loops of one
// listener share one.
type acceptShortage struct {
	log     *zap.Logger
	active  atomic.Bool  // an episode is under way
	lastLog atomic.Int64 // the last warning, in Unix nanoseconds (0: none yet)
}

// failed notes an accept that failed with a shortage, and warns at the
// start of an episode (rate-limited).
func (s *acceptShortage) failed(err error, what string) {
	if s.active.Swap(true) {
		return
	}
	now := time.Now().UnixNano()
	last := s.lastLog.Load()
	if last != 0 && now-last < int64(shortageLogEvery) || !s.lastLog.CompareAndSwap(last, now) {
		return
	}
	fields := []zap.Field{zap.Error(err)}
	if n := openFilesLimit(); n > 0 {
		fields = append(fields, zap.Uint64("open_files_limit", n))
	}
	s.log.Warn("out of file descriptors (or socket memory): "+what+
		"; existing connections are still served. Raise the open-files limit "+
		"(LimitNOFILE= in the systemd unit, ulimit -n; fs.file-max if the error is ENFILE)", fields...)
}

// recovered ends the episode: an accept succeeded.
func (s *acceptShortage) recovered() {
	if s.active.Load() {
		s.active.Store(false)
	}
}

// Backoff of RetryAccept's listener, as net/http's Server.
const (
	acceptRetryFirst = 5 * time.Millisecond
	acceptRetryMax   = time.Second
)

// RetryAccept wraps ln so that Accept waits out temporary errors (out of
// file descriptors or socket memory, a connection aborted in the queue)
// with a backoff of 5 ms doubling to 1 s, logging each shortage once, and
// returns only the errors that end the listener. fasthttp's Server.Serve
// takes any Accept error but a timeout for good and returns it, which
// would stop the process; net/http's Server retries the same way.
//
// Wrap the outermost listener, the one given to Serve: the TLS, PROXY
// protocol and rawsock wrappers pass their inner listener's errors
// through unchanged, and the connections come back as they were accepted.
func RetryAccept(ln net.Listener, log *zap.Logger) net.Listener {
	return &retryListener{Listener: ln, shortage: acceptShortage{log: log}, closed: make(chan struct{})}
}

type retryListener struct {
	net.Listener
	shortage  acceptShortage
	closeOnce sync.Once
	closed    chan struct{} // closed by Close: a backoff in progress ends
}

func (l *retryListener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.shortage.recovered()
			return c, nil
		}
		if !temporaryAccept(err) {
			return nil, err
		}
		if outOfResources(err) {
			l.shortage.failed(err, "new connections wait in the listen queue, accepting again with a backoff up to 1 s")
		}
		delay = min(max(2*delay, acceptRetryFirst), acceptRetryMax)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.closed: // the next Accept returns the listener's own error
			t.Stop()
		}
	}
}

func (l *retryListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
