package sigv4

import (
	"sync"
	"sync/atomic"

	"github.com/ec2proxy/ec2proxy/internal/prehmac"
)

// Secret is a secret key prepared for SigV4: HMAC keyed with "AWS4"+secret,
// plus the signing keys already derived for recent scopes (date, region,
// service). A warm scope costs no derivation and no allocation. Safe for
// concurrent use.
type Secret struct {
	root prehmac.Key
	mu   sync.Mutex // serialises adding a scope
	keys atomic.Pointer[[]derived]
}

type derived struct {
	date, region, service string
	key                   prehmac.Key
}

// maxScopes bounds the signing keys kept per secret: a few dates around
// midnight times the regions and services a user's clients use.
const maxScopes = 8

// NewSecret prepares secret.
func NewSecret(secret []byte) *Secret {
	k := make([]byte, 0, 4+len(secret))
	k = append(append(k, "AWS4"...), secret...)
	return &Secret{root: prehmac.New(prehmac.SHA256, k)}
}

// signingKey returns the prepared signing key for the scope, deriving and
// remembering it on first use.
func (s *Secret) signingKey(date, region, service []byte, m *prehmac.MAC) *prehmac.Key {
	if p := s.keys.Load(); p != nil {
		for i := range *p {
			d := &(*p)[i]
			if d.date == string(date) && d.region == string(region) && d.service == string(service) {
				return &d.key
			}
		}
	}
	// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")
	k := prehmac.New(prehmac.SHA256, m.Sum(&s.root, date))
	k = prehmac.New(prehmac.SHA256, m.Sum(&k, region))
	k = prehmac.New(prehmac.SHA256, m.Sum(&k, service))
	k = prehmac.New(prehmac.SHA256, m.Sum(&k, []byte("aws4_request")))
	d := derived{date: string(date), region: string(region), service: string(service), key: k}

	s.mu.Lock()
	defer s.mu.Unlock()
	var next []derived
	if p := s.keys.Load(); p != nil {
		next = append(next, *p...)
	}
	if len(next) >= maxScopes {
		next = next[1:] // the oldest scope goes
	}
	next = append(next, d)
	s.keys.Store(&next)
	return &next[len(next)-1].key
}
