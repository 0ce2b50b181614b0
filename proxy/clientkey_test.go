package proxy

import (
	"net/netip"
	"testing"
)

// Unknown access keys are counted per client address, and per /64 for
// IPv6: a host holds a whole /64 and could guess from a new address each
// time (found by a review), filling the lockout table doing so.
func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"192.0.2.7", "client:192.0.2.7"},
		{"2001:db8:1:2:aaaa::1", "client:2001:db8:1:2::/64"},
		{"2001:db8:1:2:bbbb::9", "client:2001:db8:1:2::/64"},
		{"::ffff:192.0.2.7", "client:192.0.2.7"}, // remoteAddr unmaps
	} {
		if got := clientKey(netip.MustParseAddr(tc.addr).Unmap()); got != tc.want {
			t.Errorf("clientKey(%s) = %q; want %q", tc.addr, got, tc.want)
		}
	}
}
