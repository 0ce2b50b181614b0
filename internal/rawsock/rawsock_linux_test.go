package rawsock

import "testing"

func TestWrapTCP(t *testing.T) {
	s, c := pair(t)
	if _, ok := s.(*Conn); !ok {
		t.Errorf("accepted %T, want *Conn", s)
	}
	if _, ok := c.(*Conn); !ok {
		t.Errorf("wrapped %T, want *Conn", c)
	}
}
