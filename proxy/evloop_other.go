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

// NewEventLoop reports that there is no event loop here.
func NewEventLoop(net.Listener, func() *Server, func(net.Conn) error, *zap.Logger, bool) (*EventLoop, error) {
	return nil, errors.New("event loop: Linux only")
}

// Run is never called: NewEventLoop fails.
func (*EventLoop) Run() error { return nil }

// Shutdown is never called: NewEventLoop fails.
func (*EventLoop) Shutdown(context.Context) error { return nil }
