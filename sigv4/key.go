package sigv4

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// Secret is a secret access key for SigV4. The signing key of a scope
// (date, region, service) is derived and prepared (internal/prehmac) the
// first time a request signed for it is verified, and kept for the scopes
// in use: a warm scope costs no derivation and no allocation. Until then
// only the raw secret is held (100,000 cached keys make every byte count,
// and many clients never sign with SigV4).
//
// A Secret holds the secret, and its signing keys are as sensitive for
// their scope: never log, print or marshal a Secret. The secret is a []byte
// the Secret owns, not a string, so that it is not copied or interned
// behind the Secret's back. Safe for concurrent use.
type Secret struct {
	secret []byte
	keys   atomic.Pointer[derived] // newest first; nil until the first verification
}

// derived is the signing key of one scope, in an immutable list: a new
// scope makes a new list head (and copies what it keeps of the rest).
type derived struct {
	scope *scope
	next  *derived
	key   prehmac.Key
}

// scope is interned (see internScope): every key derived for one scope
// points to the same one, rather than holding its three strings.
type scope struct{ date, region, service string }

// maxScopes bounds the signing keys kept per secret: the regions and
// services a user's clients use, for at most two dates (around midnight,
// clients on either side of it).
const maxScopes = 8

// NewSecret returns a Secret for a copy of secret.
func NewSecret(secret []byte) *Secret {
	s := new(Secret)
	s.Init(bytes.Clone(secret))
	return s
}

// Init makes s, before any use, a Secret for secret, which s keeps without
// copying: the caller must not change secret afterwards. It is for a
// Secret inside a larger value, possibly sharing one copy of the secret
// with a sigv2.Key (as the proxy's credential cache does).
func (s *Secret) Init(secret []byte) {
	s.secret = secret
	s.keys.Store(nil)
}

// signingKey returns the prepared signing key for the scope, deriving and
// remembering it on first use (with m's scratch space).
func (s *Secret) signingKey(date, region, service []byte, m *prehmac.MAC) *prehmac.Key {
	if d := find(s.keys.Load(), date, region, service); d != nil {
		return &d.key
	}
	return s.derive(date, region, service, m)
}

func find(d *derived, date, region, service []byte) *derived {
	for ; d != nil; d = d.next {
		if d.scope.date == string(date) && d.scope.region == string(region) && d.scope.service == string(service) {
			return d
		}
	}
	return nil
}

func (s *Secret) derive(date, region, service []byte, m *prehmac.MAC) *prehmac.Key {
	// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")
	root := append(append(make([]byte, 0, 4+len(s.secret)), "AWS4"...), s.secret...)
	k := m.Prepare(prehmac.SHA256, root)
	clear(root)
	k = m.Prepare(prehmac.SHA256, m.Sum(&k, date))
	k = m.Prepare(prehmac.SHA256, m.Sum(&k, region))
	k = m.Prepare(prehmac.SHA256, m.Sum(&k, service))
	k = m.Prepare(prehmac.SHA256, m.Sum(&k, []byte("aws4_request")))
	d := &derived{scope: internScope(date, region, service), key: k}
	for {
		head := s.keys.Load()
		if other := find(head, date, region, service); other != nil {
			return &other.key // derived meanwhile by another request
		}
		d.next = keep(head, d.scope.date)
		if s.keys.CompareAndSwap(head, d) {
			return &d.key
		}
	}
}

// keep returns what a new head for date keeps of list: the scopes of date
// and of the newest other date, maxScopes-1 at most. The list is shared
// when all of it is kept, copied otherwise (readers may be walking it).
func keep(list *derived, date string) *derived {
	other := ""
	n, all := 0, true
	for d := list; d != nil; d = d.next {
		if d.scope.date != date && other == "" {
			other = d.scope.date
		}
		if n == maxScopes-1 || (d.scope.date != date && d.scope.date != other) {
			all = false
			break
		}
		n++
	}
	if all {
		return list
	}
	var head *derived
	tail := &head
	n = 0
	for d := list; d != nil && n < maxScopes-1; d = d.next {
		if d.scope.date == date || d.scope.date == other {
			c := &derived{scope: d.scope, key: d.key}
			*tail = c
			tail = &c.next
			n++
		}
	}
	return head
}

// interned holds the scopes in use, so that the keys of 100,000 secrets
// for one scope share one. It is bounded: scopes come from requests
// (before their signature is checked), and dates change every day; when
// full it starts over, which only costs sharing.
var interned struct {
	mu sync.Mutex
	m  map[string]*scope
}

const (
	maxInterned     = 1024
	maxInternedSize = 64 // region and service longer than this are not shared
)

func internScope(date, region, service []byte) *scope {
	if len(region)+len(service) > maxInternedSize {
		return &scope{date: string(date), region: string(region), service: string(service)}
	}
	id := string(date) + "/" + string(region) + "/" + string(service)
	interned.mu.Lock()
	defer interned.mu.Unlock()
	if sc := interned.m[id]; sc != nil {
		return sc
	}
	if interned.m == nil || len(interned.m) >= maxInterned {
		interned.m = make(map[string]*scope)
	}
	sc := &scope{date: string(date), region: string(region), service: string(service)}
	interned.m[id] = sc
	return sc
}
