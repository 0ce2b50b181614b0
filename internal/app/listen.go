package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/internal/proxyproto"
	"github.com/ec2proxy/ec2proxy/internal/rawsock"
)

// ListenEC2 opens the EC2 listener: TCP (with raw socket calls,
// server.raw_socket_io), then the PROXY protocol from
// trusted proxies (server.proxy_protocol), then TLS (server.tls), in the
// order the bytes arrive. onProxyError hears of connections closed for a
// bad PROXY header.
func ListenEC2(cfg *configs.Config, tlsConfig *tls.Config, onProxyError func(net.Addr, error)) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	if cfg.Server.RawSocketIO {
		ln = rawsock.Listener{Listener: ln}
	}
	if cfg.Server.ProxyProtocol {
		trusted, err := cfg.Server.TrustedPrefixes()
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = proxyproto.NewListener(ln, trusted, proxyproto.Options{
			HeaderTimeout: cfg.Server.ReadTimeout,
			OnError:       onProxyError,
		})
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}

// ProxyProtocolError logs and counts a connection closed for a bad PROXY
// header, with the current configuration's logger and metrics.
func (r *Runner) ProxyProtocolError(remote net.Addr, err error) {
	a := r.current.Load()
	reason := "malformed"
	switch {
	case errors.Is(err, proxyproto.ErrNoHeader):
		reason = "missing"
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason = "timeout"
	}
	a.Metrics.ProxyProtocol.WithLabelValues(reason).Inc()
	a.Logger.Warn("connection from a trusted proxy closed: bad PROXY protocol header",
		zap.Stringer("peer", remote), zap.String("reason", reason), zap.Error(err))
}
