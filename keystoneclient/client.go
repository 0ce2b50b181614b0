package keystoneclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ec2proxy/ec2proxy/internal/flightcache"
	"github.com/ec2proxy/ec2proxy/sigv2"
)

// Config configures a Client.
type Config struct {
	// AuthURL is Keystone's base URL, with or without a trailing /v3.
	AuthURL string
	// The service account; it needs role service (or admin).
	Username, Password, UserDomainName, ProjectName, ProjectDomainName string
	// IDs, where set, are used instead of the names (as keystoneauth
	// does with OS_USER_DOMAIN_ID, OS_PROJECT_ID, OS_PROJECT_DOMAIN_ID).
	UserDomainID, ProjectID, ProjectDomainID string
	// UserID, if set, names the user instead of Username and its domain.
	UserID string
	// An application credential of the service account, instead of the
	// user and password: its token has the project and roles it was made
	// with.
	ApplicationCredentialID, ApplicationCredentialSecret string

	Timeout time.Duration // per Keystone call
	TLS     *tls.Config   // nil: system roots
	// TokenMargin: a cached token is renewed this long before it expires.
	TokenMargin time.Duration
	// MaxTokens bounds the per-access-key token cache.
	MaxTokens int
	// MaxConcurrent bounds the ec2tokens calls in flight at once (0: 16).
	// Without it, a thousand cold keys (a start, a flushed Redis, tokens
	// fetched together renewing together) were a thousand calls at once,
	// and a small Keystone's listen queue overflowed: 503s after the
	// timeout, for work Keystone then did for nothing (found by a review).
	MaxConcurrent int
	// RejectTTL is how long a credential Keystone rejected stays rejected
	// without asking again (it protects Keystone from retry storms).
	RejectTTL time.Duration

	Now func() time.Time
	// Observe is told about every Keystone call: op is "auth",
	// "ec2tokens" or "validate" (see BackendRejected), result is "ok",
	// "rejected" or "error".
	Observe func(op, result string, d time.Duration)
	// CacheObserve is told how each Identity lookup was answered.
	CacheObserve func(flightcache.Outcome)

	// Shared, if set, lets replicas reuse each other's tokens: a miss in
	// the in-process cache looks there before asking Keystone, and a new
	// token is put there.
	Shared SharedTokens
	// SharedObserve is told how each use of Shared went: "hit", "miss",
	// "error", "stored" or "store_error".
	SharedObserve func(result string)
}

// SharedTokens stores tokens where other replicas find them
// (credstore.Redis does). Get returns nil, nil when there is none.
type SharedTokens interface {
	GetToken(ctx context.Context, accessKey string) ([]byte, error)
	PutToken(ctx context.Context, accessKey string, token []byte, ttl time.Duration) error
	DeleteToken(ctx context.Context, accessKey string) error
	// DeleteTokenIf removes the token if stale says so of it, atomically.
	DeleteTokenIf(ctx context.Context, accessKey string, stale func(token []byte) bool) (bool, error)
}

// account names the service account in messages.
func (c *Client) account() string {
	if c.cfg.ApplicationCredentialID != "" {
		return fmt.Sprintf("application credential %q", c.cfg.ApplicationCredentialID)
	}
	if c.cfg.UserID != "" {
		return fmt.Sprintf("user id %s", c.cfg.UserID)
	}
	return fmt.Sprintf("user %q", c.cfg.Username)
}

// serviceRoleHint says how the service account gets the role ec2tokens
// needs.
func (c *Client) serviceRoleHint() string {
	if c.cfg.ApplicationCredentialID != "" {
		return "create it again as a user with role service on its project (an application credential keeps the roles it was made with)"
	}
	return "give it role service on project " + c.project()
}

// project names the service account's project in messages, as it is
// scoped (an id over a name).
func (c *Client) project() string {
	if c.cfg.ProjectID != "" {
		return "id " + c.cfg.ProjectID
	}
	return fmt.Sprintf("%q", c.cfg.ProjectName)
}

// ExchangeHost is the host in the request ec2proxy signs for ec2tokens.
// Keystone only checks that the signature matches what it is sent.
const ExchangeHost = "ec2proxy"

// Client talks to one Keystone. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // .../v3
	http *http.Client

	svc        atomic.Pointer[serviceToken]
	svcMu      sync.Mutex // one password authentication at a time
	svcRefresh atomic.Bool

	tokens *flightcache.Cache[*sigv2.Key, *Identity]
	calls  chan struct{} // a slot per ec2tokens call in flight (MaxConcurrent)
	// forgets counts Forget calls by a hash of their access key: a token
	// exchanged across a Forget of its key is not shared (see Forget). One
	// counter for all keys stopped every key's sharing while change events
	// streamed (a sync, a reencrypt), and every replica then exchanged for
	// itself (found by a review); keys that share a slot only share
	// less.
	forgets  [forgetSlots]atomic.Uint64
	seed     maphash.Seed
	held     holds         // access keys rechecked lately (see BackendRejected)
	rechecks chan struct{} // a slot per check under way (maxRechecks)
}

type serviceToken struct {
	token           string
	obtained, renew time.Time
	expires         time.Time
	roles           []string     // on its project
	checked         atomic.Int64 // when Keystone last said it is valid (Unix ns; see serviceTokenValid)
}

// New returns a client; it does not contact Keystone.
func New(cfg Config) (*Client, error) {
	if cfg.AuthURL == "" || (cfg.Username == "" && cfg.UserID == "" || cfg.Password == "") && (cfg.ApplicationCredentialID == "" || cfg.ApplicationCredentialSecret == "") {
		return nil, errors.New("keystoneclient: auth URL, and username and password or an application credential's id and secret, are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 16
	}
	if cfg.RejectTTL <= 0 {
		cfg.RejectTTL = 5 * time.Second
	}
	if cfg.Observe == nil {
		cfg.Observe = func(string, string, time.Duration) {}
	}
	if cfg.SharedObserve == nil {
		cfg.SharedObserve = func(string) {}
	}
	base := strings.TrimRight(cfg.AuthURL, "/")
	if !strings.HasSuffix(base, "/v3") {
		base += "/v3"
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = cfg.TLS
	transport.MaxIdleConnsPerHost = 64
	c := &Client{cfg: cfg, base: base, http: &http.Client{Transport: transport, Timeout: cfg.Timeout}, calls: make(chan struct{}, cfg.MaxConcurrent), rechecks: make(chan struct{}, maxRechecks), seed: maphash.MakeSeed()}
	c.tokens = flightcache.New(c.loadIdentity, flightcache.Options{
		IsNegative:  func(err error) bool { return errors.Is(err, ErrRejected) },
		NegativeTTL: cfg.RejectTTL,
		// A token renewed early may still be served while Keystone is down,
		// up to one minute before it really expires; it is served while
		// its renewal runs, and for a second after a renewal failed, so
		// that no request waits for Keystone on a key it has a token for.
		StaleIfError: max(cfg.TokenMargin-time.Minute, 0),
		StaleLimit:   func(id any) time.Time { return id.(*Identity).ExpiresAt().Add(-time.Minute) },
		RefreshAhead: true,
		RetryAfter:   time.Second,
		MaxEntries:   cfg.MaxTokens,
		LoadTimeout:  2 * cfg.Timeout, // service token, then ec2tokens
		Now:          cfg.Now,
		Observe:      cfg.CacheObserve,
		WaitError:    errorf(ErrUnavailable, "timed out waiting for a token exchange"),
	})
	return c, nil
}

// Identity returns the Keystone identity for accessKey, whose secret is key.
// Tokens are cached until TokenMargin before they expire, so a steady client
// costs one ec2tokens call per token lifetime. The caller must have verified
// the client's request: Keystone only sees ec2proxy's own signature.
// accessKey is kept as the cache's key: a caller holding it already (the
// proxy's credential cache) thus shares its copy.
func (c *Client) Identity(ctx context.Context, accessKey string, key *sigv2.Key) (*Identity, error) {
	return c.tokens.GetString(ctx, accessKey, key)
}

// CachedIdentity returns accessKey's identity only if its token is cached
// and not due for renewal; it never calls Keystone or Redis.
// It counts nothing (see CountCachedHit).
func (c *Client) CachedIdentity(accessKey string) (*Identity, bool) {
	return c.tokens.PeekString(accessKey)
}

// CountCachedHit counts a token cache hit, once CachedIdentity's answer
// has served.
func (c *Client) CountCachedHit() { c.tokens.CountHit() }

// Forget drops the cached token of accessKey (after the credential
// changed), here and in the shared store. An exchange under way since
// before does not share its token, and one that shared it already before
// this replica heard of the change has it deleted now: the change's own
// delete could come first, and every replica would then take the old
// token from the store for up to its lifetime (found by a review).
func (c *Client) Forget(accessKey string) {
	c.forgetsOf(accessKey).Add(1)
	c.tokens.Invalidate(accessKey)
	if c.cfg.Shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		defer cancel()
		if err := c.cfg.Shared.DeleteToken(ctx, accessKey); err != nil {
			c.cfg.SharedObserve("store_error")
		}
	}
}

// forgetSlots: Forget counters, by access key.
const forgetSlots = 256

func (c *Client) forgetsOf(accessKey string) *atomic.Uint64 {
	return &c.forgets[maphash.String(c.seed, accessKey)%forgetSlots]
}

func (c *Client) loadIdentity(ctx context.Context, accessKey string, key *sigv2.Key) (*Identity, time.Time, error) {
	forgotten := c.forgetsOf(accessKey)
	forgets := forgotten.Load()
	if id := c.sharedIdentity(ctx, accessKey); id != nil {
		if !c.held.droppedSince(accessKey, c.cfg.Now().Add(-revocationGrain)) {
			return id, id.ExpiresAt().Add(-c.cfg.TokenMargin), nil
		}
		// Another replica's token may be revoked already too, if it got it
		// in the revocation's second or shared it after (found by a
		// review). The validation and the exchange after it get a budget
		// of their own, each with a service token's renewal: the load's
		// covers one exchange.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 4*c.cfg.Timeout)
		defer cancel()
		if !c.revokedAlready(ctx, accessKey, id) {
			return id, id.ExpiresAt().Add(-c.cfg.TokenMargin), nil
		}
		c.unshare(accessKey, id)
	}
	id, err := c.exchange(ctx, accessKey, key)
	if err == nil {
		id, err = c.afterRevocation(ctx, accessKey, key, id)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	if forgotten.Load() == forgets {
		c.share(ctx, accessKey, id)
		if forgotten.Load() != forgets && c.cfg.Shared != nil {
			// A Forget between the check and the put: its delete may
			// have come first (found by a review).
			_ = c.cfg.Shared.DeleteToken(ctx, accessKey)
		}
	}
	fresh := id.ExpiresAt().Add(-c.cfg.TokenMargin)
	if now := c.cfg.Now(); !fresh.After(now) {
		// A token that is already inside the margin (short token
		// lifetimes) is still used, for half of what is left.
		fresh = now.Add(id.ExpiresAt().Sub(now) / 2)
	}
	return id, fresh, nil
}

// exchange signs an ec2tokens request for accessKey with key and asks
// Keystone.
func (c *Client) exchange(ctx context.Context, accessKey string, key *sigv2.Key) (*Identity, error) {
	select {
	case c.calls <- struct{}{}:
		defer func() { <-c.calls }()
	case <-ctx.Done():
		return nil, errorf(ErrUnavailable, "no ec2tokens call could start: the %d allowed at once (keystone.max_concurrent) were all in flight until the timeout", cap(c.calls))
	}
	body := c.exchangeBody(accessKey, key)
	var id *Identity
	_, err := c.withServiceToken(ctx, func(svc string) (status int, err error) {
		id, status, err = c.postEC2Tokens(ctx, svc, body)
		return status, err
	})
	return id, err
}

// withServiceToken makes a Keystone call with the service token. A 401
// with a service token older than a few seconds, which Keystone then says
// is no longer valid, is retried once with a new service token (Keystone
// may have rotated its keys). Keystone's 401 body is the same for a bad
// credential: without the check, each rejected credential cost a password
// authentication (bcrypt) and a second call, while other keys' exchanges
// waited for it (found by a review).
func (c *Client) withServiceToken(ctx context.Context, call func(svc string) (int, error)) (int, error) {
	for attempt := 0; ; attempt++ {
		svc, err := c.serviceToken(ctx)
		if err != nil {
			return 0, err
		}
		status, err := call(svc.token)
		if status == http.StatusUnauthorized && attempt == 0 && c.cfg.Now().Sub(svc.obtained) > 10*time.Second && !c.serviceTokenValid(ctx, svc) {
			c.dropServiceToken(svc)
			continue
		}
		return status, err
	}
}

func (c *Client) exchangeBody(accessKey string, key *sigv2.Key) []byte {
	params := []sigv2.Pair{
		{Name: "AWSAccessKeyId", Value: accessKey},
		{Name: "Action", Value: "GetIdentity"},
		{Name: "SignatureMethod", Value: "HmacSHA256"},
		{Name: "SignatureVersion", Value: "2"},
		{Name: "Timestamp", Value: c.cfg.Now().UTC().Format("2006-01-02T15:04:05Z")},
	}
	sig := key.Sign(sigv2.HmacSHA256, sigv2.StringToSign("POST", ExchangeHost, "/", params))
	var body exchangeRequest
	cr := &body.Credentials
	cr.Access, cr.Host, cr.Path, cr.Signature, cr.Verb = accessKey, ExchangeHost, "/", sig, "POST"
	cr.Params.AWSAccessKeyID, cr.Params.Action, cr.Params.SignatureMethod = params[0].Value, params[1].Value, params[2].Value
	cr.Params.SignatureVersion, cr.Params.Timestamp = params[3].Value, params[4].Value
	b, _ := json.Marshal(&body)
	return b
}

// exchangeRequest is the body of POST /v3/ec2tokens. Structs rather than
// maps: one exchange per access key fills the token cache, and what each
// allocates adds to the heap the collector finds live while it fills (the
// fields are in the order maps marshalled them, sorted).
type exchangeRequest struct {
	Credentials struct {
		Access string `json:"access"`
		Host   string `json:"host"`
		Params struct {
			AWSAccessKeyID   string `json:"AWSAccessKeyId"`
			Action           string `json:"Action"`
			SignatureMethod  string `json:"SignatureMethod"`
			SignatureVersion string `json:"SignatureVersion"`
			Timestamp        string `json:"Timestamp"`
		} `json:"params"`
		Path      string `json:"path"`
		Signature string `json:"signature"`
		Verb      string `json:"verb"`
	} `json:"credentials"`
}

func (c *Client) postEC2Tokens(ctx context.Context, serviceToken string, body []byte) (*Identity, int, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/ec2tokens", bytes.NewReader(body))
	if err != nil {
		return nil, 0, errorf(ErrUnavailable, "%v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", serviceToken)
	resp, err := c.http.Do(req)
	if err != nil {
		c.cfg.Observe("ec2tokens", "error", time.Since(start))
		return nil, 0, errorf(ErrUnavailable, "POST /v3/ec2tokens: %v", err)
	}
	defer resp.Body.Close()
	buf := answerBuffers.Get().(*bytes.Buffer)
	defer putAnswerBuffer(buf)
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
	data := buf.Bytes() // nothing below keeps it: json.Unmarshal copies
	if err != nil {
		c.cfg.Observe("ec2tokens", "error", time.Since(start))
		return nil, resp.StatusCode, errorf(ErrUnavailable, "POST /v3/ec2tokens: reading the answer: %v", err)
	}
	switch status := resp.StatusCode; {
	case status == http.StatusOK:
		var tb tokenBody
		token := resp.Header.Get("X-Subject-Token")
		if err := json.Unmarshal(data, &tb); err != nil || token == "" {
			c.cfg.Observe("ec2tokens", "error", time.Since(start))
			return nil, status, errorf(ErrUnavailable, "POST /v3/ec2tokens: unparsable token (X-Subject-Token present: %t)", token != "")
		}
		id, err := tb.identity(token, c.cfg.Now())
		c.cfg.Observe("ec2tokens", resultOf(err), time.Since(start))
		return id, status, err
	case status == http.StatusForbidden && bytes.Contains(data, []byte("identity:ec2tokens_validate")):
		c.cfg.Observe("ec2tokens", "error", time.Since(start))
		return nil, status, errorf(ErrUnavailable, "the service %s may not call ec2tokens: %s", c.account(), c.serviceRoleHint())
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		c.cfg.Observe("ec2tokens", "rejected", time.Since(start))
		return nil, status, errorf(ErrRejected, "keystone answered %d: %s", status, keystoneMessage(data))
	default:
		c.cfg.Observe("ec2tokens", "error", time.Since(start))
		return nil, status, errorf(ErrUnavailable, "POST /v3/ec2tokens answered %d: %s", status, keystoneMessage(data))
	}
}

// answerBuffers hold ec2tokens answers (~1.2 KB with the catalog) while
// they are parsed: io.ReadAll's growing copies were the largest allocation
// of a token exchange.
var answerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putAnswerBuffer(b *bytes.Buffer) {
	if b.Cap() <= 64<<10 { // an error page of up to 1 MiB is not kept
		answerBuffers.Put(b)
	}
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrRejected):
		return "rejected"
	}
	return "error"
}

// keystoneMessage extracts error.message from a Keystone error body.
func keystoneMessage(data []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	if len(data) > 200 {
		data = data[:200]
	}
	return fmt.Sprintf("%q", data)
}

// sharedIdentity returns another replica's token for accessKey if it is
// still fresh. Any failure just means asking Keystone.
func (c *Client) sharedIdentity(ctx context.Context, accessKey string) *Identity {
	if c.cfg.Shared == nil {
		return nil
	}
	blob, err := c.cfg.Shared.GetToken(ctx, accessKey)
	switch {
	case err != nil:
		c.cfg.SharedObserve("error")
		return nil
	case blob == nil:
		c.cfg.SharedObserve("miss")
		return nil
	}
	id := new(Identity)
	if err := json.Unmarshal(blob, id); err != nil || id.token == "" ||
		!id.ExpiresAt().Add(-c.cfg.TokenMargin).After(c.cfg.Now()) {
		c.cfg.SharedObserve("miss")
		return nil
	}
	if id.Subject == nil { // no field of it was shared: as empty as the JSON
		id.Subject = new(Subject)
	}
	id.Subject = intern(id.Subject)
	c.cfg.SharedObserve("hit")
	return id
}

// share stores a new token for the other replicas, for as long as they
// would use it themselves.
func (c *Client) share(ctx context.Context, accessKey string, id *Identity) {
	if c.cfg.Shared == nil {
		return
	}
	ttl := id.ExpiresAt().Add(-c.cfg.TokenMargin).Sub(c.cfg.Now())
	if ttl < time.Second {
		return
	}
	buf := shareBuffers.Get().(*bytes.Buffer)
	defer shareBuffers.Put(buf)
	buf.Reset()
	if err := id.encode(buf); err != nil {
		return
	}
	if err := c.cfg.Shared.PutToken(ctx, accessKey, buf.Bytes(), ttl); err != nil {
		c.cfg.SharedObserve("store_error")
		return
	}
	c.cfg.SharedObserve("stored")
}

// shareBuffers hold share's JSON: one per cold request otherwise.
var shareBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// CachedTokens is the number of access keys with a cached token.
func (c *Client) CachedTokens() int { return c.tokens.Len() }
