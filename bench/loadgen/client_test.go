package main

import (
	"net"
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	tests := []struct {
		name, give        string
		status, length    int
		closeAfter, valid bool
	}{
		{"ok", "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", 200, 42, false, true},
		{"case", "HTTP/1.1 403 Forbidden\r\ncontent-length:7\r\nConnection: Close\r\n\r\n", 403, 7, true, true},
		{"no length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, -1, false, true},
		{"garbage", "hello\r\n\r\n", 0, 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, length, closeAfter, ok := parseHead([]byte(tt.give))
			if ok != tt.valid || ok && (status != tt.status || length != tt.length || closeAfter != tt.closeAfter) {
				t.Errorf("parseHead(%q) = %d, %d, %t, %t; want %d, %d, %t, %t", tt.give, status, length, closeAfter, ok, tt.status, tt.length, tt.closeAfter, tt.valid)
			}
		})
	}
}

// TestRoundTrip serves answers split across writes and larger than the
// buffer, and checks the connection stays usable.
func TestRoundTrip(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	big := strings.Repeat("x", 100<<10)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		buf := make([]byte, 4096)
		for _, answer := range []string{"HTTP/1.1 200 OK\r\nContent-", "Length: 5\r\n\r\nhello", "HTTP/1.1 200 OK\r\nContent-Length: 102400\r\n\r\n" + big} {
			if !strings.HasPrefix(answer, "Length") {
				if _, err := s.Read(buf); err != nil {
					return
				}
			}
			s.Write([]byte(answer))
		}
	}()
	c := newConn(ln.Addr().String())
	for i := range 2 {
		status, err := c.roundTrip([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		if err != nil || status != 200 {
			t.Fatalf("roundTrip %d = %d, %v; want 200", i, status, err)
		}
	}
	if c.c == nil {
		t.Error("connection closed after a keep-alive answer")
	}
}
