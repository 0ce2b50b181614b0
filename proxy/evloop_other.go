//go:build !linux

package proxy

import (
	"context"
	"errors"
	"net"

	"go.uber.org/zap"
)

// EventLoop is Linux's (epoll); elsewhere server.event_loop is ignored.
type EventLoop struct{}

// NewEventLoops reports that there is no event loop here.
func NewEventLoops(int, net.Listener, func() *Server, func(net.Conn) error, *zap.Logger, bool, bool) ([]*EventLoop, error) {
	return nil, errors.New("event loop: Linux only")
}

// Run is never called: NewEventLoops fails.
func (*EventLoop) Run() error { return nil }

// Shutdown is never called: NewEventLoops fails.
func (*EventLoop) Shutdown(context.Context) error { return nil }

// Quiesce is never called: NewEventLoops fails.
func (*EventLoop) Quiesce() {}

// HandedOff is never called: NewEventLoops fails.
func (*EventLoop) HandedOff() int64 { return 0 }
