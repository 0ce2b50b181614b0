package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/keystoneclient"
)

const syncHelp = `Import every EC2 credential from Keystone (GET /v3/credentials?type=ec2)
into the store, so the proxy can verify them: new ones are added, changed ones
updated, and ones that came from Keystone but are gone there removed. Records
created with 'creds create' are never touched; a credential disabled here stays
disabled. Listing all credentials needs an account with the admin role, taken
from the usual OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME or
OS_PROJECT_ID, and OS_USER_DOMAIN_NAME/_ID and OS_PROJECT_DOMAIN_NAME/_ID
variables (source an admin-openrc.sh; an _ID is used over its name, as the
openstack CLI does), or, with OS_CLOUD set, that cloud of clouds.yaml (and
secure.yaml) as the openstack CLI finds them; any other account is refused (Keystone would show it only
its own credentials, and the sync would remove the rest).`

func credsSync(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("creds sync", "-keystone [-dry-run] [-watch INTERVAL]", stderr)
	path := configFlag(fs)
	fromKeystone := fs.Bool("keystone", false, "import from Keystone (the only source today; required)")
	dryRun := fs.Bool("dry-run", false, "report what would change, change nothing")
	watch := fs.Duration("watch", 0, "keep syncing every INTERVAL (e.g. 1m) until interrupted")
	usage := fs.Usage
	fs.Usage = func() { fmt.Fprint(stderr, syncHelp+"\n\n"); usage() }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !*fromKeystone {
		fmt.Fprintln(stderr, "creds sync: say where from: -keystone")
		fs.Usage()
		return errUsage
	}
	if *watch < 0 || (*watch > 0 && *watch < time.Second) {
		return errors.New("-watch must be at least 1s")
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	kc, err := adminKeystone(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if *watch > 0 { // a one-off sync dies of a signal, as it always did (found by a review)
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
	}
	return syncRounds(ctx, kc, func() (credStore, func(), error) { return openStoreCreating(cfg, stderr) }, *dryRun, *watch, stdout, stderr)
}

// syncRounds syncs once, or every watch until ctx ends. The store is
// opened afresh for every round: a file store read once would be written
// back whole from that copy, undoing what 'creds disable' or 'creds
// create' changed meanwhile (found by a review).
func syncRounds(ctx context.Context, kc ec2CredentialLister, open func() (credStore, func(), error), dryRun bool, watch time.Duration, stdout, stderr io.Writer) error {
	round := func() error {
		store, done, err := open()
		if err != nil {
			return err
		}
		defer done()
		_, err = syncOnce(context.Background(), kc, store, dryRun, stdout, stderr) // a round runs to its end: a signal ends the loop between rounds
		return err
	}
	if watch == 0 {
		return round()
	}
	for {
		if err := round(); err != nil {
			fmt.Fprintf(stderr, "%s sync failed (will retry): %v\n", time.Now().Format(time.RFC3339), err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watch):
		}
	}
}

// adminKeystone builds a Keystone client from OS_* variables, or the
// clouds.yaml cloud OS_CLOUD names, falling back to the configured auth
// URL.
func adminKeystone(cfg *configs.Config) (*keystoneclient.Client, error) {
	get, from, err := openrcLookup()
	if err != nil {
		return nil, err
	}
	c, err := adminKeystoneFrom(cfg, get)
	if err != nil && from != "" {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return c, err
}

func adminKeystoneFrom(cfg *configs.Config, get func(string) string) (*keystoneclient.Client, error) {
	env := func(name, fallback string) string {
		if v := get(name); v != "" {
			return v
		}
		return fallback
	}
	switch authType := get("OS_AUTH_TYPE"); {
	case strings.Contains(authType, "applicationcredential"):
		// Measured: Keystone answers an application credential's token,
		// even one with the admin role, with an empty list, which a sync
		// would take as every credential gone.
		return nil, errors.New("cannot use an application credential (auth type " + authType + "): Keystone lists no EC2 credentials to its tokens; use an admin user's password (an admin-openrc.sh)")
	case authType != "" && authType != "password" && authType != "v3password":
		// An identity provider's user name and password (v3oidcpassword)
		// must not go to Keystone's password method.
		return nil, errors.New("cannot use auth type " + authType + ": it authenticates with an admin user's password (auth type password)")
	}
	url := env("OS_AUTH_URL", cfg.Keystone.AuthURL)
	user, userID, password := get("OS_USERNAME"), get("OS_USER_ID"), get("OS_PASSWORD")
	if url == "" || user == "" && userID == "" || password == "" {
		return nil, errors.New("needs an admin account: set OS_AUTH_URL (or keystone.auth_url), OS_USERNAME (or OS_USER_ID), OS_PASSWORD and OS_PROJECT_NAME (or OS_PROJECT_ID), e.g. by sourcing an admin-openrc.sh, or OS_CLOUD naming a clouds.yaml cloud that has them")
	}
	// keystone.tls, with the openrc's OS_CACERT, OS_CERT and OS_KEY over
	// it (found by a review: a private CA's Keystone was refused).
	t := cfg.Keystone.TLS
	t.CAFile, t.CertFile, t.KeyFile = env("OS_CACERT", t.CAFile), env("OS_CERT", t.CertFile), env("OS_KEY", t.KeyFile)
	var tlsConfig *tls.Config
	if configs.URLScheme(url) == "https" {
		var err error
		if tlsConfig, err = configs.ClientTLS(t); err != nil {
			return nil, fmt.Errorf("keystone.tls (or OS_CACERT, OS_CERT, OS_KEY): %w", err)
		}
	}
	// As keystoneauth reads an openrc: an id, where given, over the name
	// (Horizon's openrc sets OS_PROJECT_ID and OS_PROJECT_DOMAIN_ID).
	projectID := get("OS_PROJECT_ID")
	projectName := get("OS_PROJECT_NAME")
	if projectID == "" && projectName == "" {
		projectName = "admin"
	}
	return keystoneclient.New(keystoneclient.Config{
		AuthURL: url, Username: user, UserID: userID, Password: password,
		UserDomainID:      get("OS_USER_DOMAIN_ID"),
		UserDomainName:    env("OS_USER_DOMAIN_NAME", "Default"),
		ProjectID:         projectID,
		ProjectName:       projectName,
		ProjectDomainID:   get("OS_PROJECT_DOMAIN_ID"),
		ProjectDomainName: env("OS_PROJECT_DOMAIN_NAME", "Default"),
		Timeout:           30 * time.Second,
		TLS:               tlsConfig,
	})
}

// errLocalRecord: the access key is a credential created here.
var errLocalRecord = errors.New("a credential created here has this access key")

type syncCounts struct{ added, updated, removed, unchanged, skipped, failed int }

// ec2CredentialLister is Keystone's list of EC2 credentials
// (*keystoneclient.Client).
type ec2CredentialLister interface {
	ListEC2Credentials(ctx context.Context) ([]keystoneclient.EC2Credential, error)
}

// syncOnce makes the store match Keystone and reports what changed. A
// credential that cannot be imported (not valid here, its write failed,
// or its stored record cannot be read here) is reported and counted, and
// the rest is synced, removals included: one bad credential must not keep
// revoked ones in the store. It then returns an error. A stored record
// that cannot be read (sealed with a key not configured here) is never
// rewritten; one from Keystone and gone there is removed. Every write is
// an Update of the record as it is then, and every removal a DeleteIf: a
// 'creds disable' or 'creds create' made while the round runs stays
// (found by a review). The file store takes a round as one change.
func syncOnce(ctx context.Context, kc ec2CredentialLister, store credStore, dryRun bool, stdout, stderr io.Writer) (syncCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	fromKeystone, err := kc.ListEC2Credentials(ctx)
	if err != nil {
		return syncCounts{}, fmt.Errorf("listing Keystone's EC2 credentials: %w", err)
	}
	fmt.Fprintf(stderr, "keystone has %d EC2 credential(s)\n", len(fromKeystone))
	r := &syncRound{ctx: ctx, store: store, dryRun: dryRun, stdout: stdout, stderr: stderr,
		existing: map[string]credstore.Record{}, unreadable: map[string]unreadableRecord{}, seen: map[string]bool{}}
	if dryRun {
		r.verb = "would be "
	}
	err = store.List(ctx, func(rec credstore.Record, err error) error {
		switch {
		case err == nil:
			r.existing[rec.AccessKey] = rec
		case rec.AccessKey != "":
			r.unreadable[rec.AccessKey] = unreadableRecord{rec, err}
		}
		return nil
	})
	if err != nil {
		return r.n, fmt.Errorf("listing the store: %w", err)
	}
	progress := newProgress(stderr, len(fromKeystone))
	apply := func() error {
		for _, kr := range fromKeystone {
			progress.step()
			r.importCredential(kr)
		}
		for access, rec := range r.existing {
			r.removeIfGone(access, rec)
		}
		for access, u := range r.unreadable {
			r.removeIfGone(access, u.Record)
		}
		return nil
	}
	if b, ok := store.(batcher); ok && !dryRun {
		// The changes are printed once written: a failed write makes
		// none, and nothing is printed while other commands wait for
		// the lock (found by a review).
		var changes bytes.Buffer
		r.stdout = &changes
		if err := b.Batch(apply); err != nil {
			return syncCounts{}, fmt.Errorf("changing the credentials file: %w (nothing was changed)", err)
		}
		_, _ = changes.WriteTo(stdout)
	} else {
		_ = apply()
	}
	progress.done()
	n := r.n
	fmt.Fprintf(stdout, "sync%s: %d added, %d updated, %d removed, %d unchanged, %d skipped, %d failed\n",
		map[bool]string{true: " (dry run, nothing changed)", false: ""}[dryRun], n.added, n.updated, n.removed, n.unchanged, n.skipped, n.failed)
	if n.failed > 0 {
		return n, fmt.Errorf("%d credential(s) not synced (listed above)", n.failed)
	}
	return n, nil
}

// batcher is a store that applies many changes as one (credstore.File: one
// lock, one rewrite, where each change rewrote the whole file: a first
// sync of 1000 credentials took 45 s).
type batcher interface{ Batch(fn func() error) error }

// syncRound is one sync's view of the store and its counts.
type syncRound struct {
	ctx            context.Context
	store          credStore
	dryRun         bool
	verb           string // "would be " in a dry run
	stdout, stderr io.Writer
	existing       map[string]credstore.Record
	unreadable     map[string]unreadableRecord
	seen           map[string]bool // access keys Keystone has
	n              syncCounts
}

type unreadableRecord struct {
	credstore.Record // what could be read of it
	err              error
}

func (r *syncRound) failed(access, why string) {
	r.n.failed++
	fmt.Fprintf(r.stderr, "not synced %s: %s\n", shownKey(access), why)
}

func (r *syncRound) skipped(access string) {
	r.n.skipped++
	fmt.Fprintf(r.stderr, "skipped %s: a credential created here has the same access key\n", shownKey(access))
}

// importCredential adds or updates Keystone's credential kr.
func (r *syncRound) importCredential(kr keystoneclient.EC2Credential) {
	r.seen[kr.Access] = true
	want := credstore.Record{AccessKey: kr.Access, Secret: kr.Secret, UserID: kr.UserID, ProjectID: kr.ProjectID,
		TrustID: kr.TrustID, Enabled: true, Source: "keystone", CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if err := want.Validate(); err != nil {
		r.failed(kr.Access, "Keystone's credential is not valid here: "+err.Error())
		return
	}
	if u, ok := r.unreadable[kr.Access]; ok && u.Source == "keystone" {
		// Perhaps this host's key configuration, not the record: a
		// rewrite would seal it with a key the proxies may lack, or in
		// plain text (found by a review).
		r.failed(kr.Access, "the stored record cannot be read here ("+u.err.Error()+"): check credentials.encryption_key_file and old_encryption_key_files on this host; if the record itself is lost, 'creds delete' it and sync again")
		return
	}
	old, ok := r.existing[kr.Access]
	if !ok {
		var u unreadableRecord
		u, ok = r.unreadable[kr.Access]
		old = u.Record
	}
	switch {
	case ok && old.Source != "keystone":
		r.skipped(kr.Access)
		return
	case ok && old.Secret == want.Secret && old.UserID == want.UserID && old.ProjectID == want.ProjectID && old.TrustID == want.TrustID:
		r.n.unchanged++
		return
	}
	change := "added"
	if !r.dryRun {
		err := r.store.Update(r.ctx, kr.Access, func(cur credstore.Record, exists bool) (credstore.Record, error) {
			w := want // a copy: asked again after a change, fn starts afresh (found by a review)
			change = "added"
			if exists {
				if cur.Source != "keystone" {
					return cur, errLocalRecord
				}
				change = "updated"
				w.Enabled, w.CreatedAt = cur.Enabled, cur.CreatedAt // a local disable survives a sync
			}
			return w, nil
		})
		switch {
		case errors.Is(err, errLocalRecord):
			r.skipped(kr.Access)
			return
		case err != nil:
			r.failed(kr.Access, err.Error())
			return
		}
	} else if ok {
		change = "updated"
	}
	if change == "added" {
		r.n.added++
	} else {
		r.n.updated++
	}
	fmt.Fprintf(r.stdout, "%s%s %s (user %s, project %s)\n", r.verb, change, shownKey(kr.Access), shownKey(kr.UserID), shownKey(kr.ProjectID))
}

// removeIfGone removes the stored record rec of access if it came from
// Keystone and Keystone no longer has it, and is still so when removed: a
// record made here with that key meanwhile stays.
func (r *syncRound) removeIfGone(access string, rec credstore.Record) {
	if rec.Source != "keystone" || r.seen[access] {
		return
	}
	if !r.dryRun {
		removed, err := r.store.DeleteIf(r.ctx, access, func(cur credstore.Record, _ error) bool { return cur.Source == "keystone" })
		switch {
		case errors.Is(err, credstore.ErrNotFound):
		case err != nil:
			r.failed(access, "removing it (gone from Keystone): "+err.Error())
			return
		case !removed:
			r.skipped(access)
			return
		}
	}
	r.n.removed++
	fmt.Fprintf(r.stdout, "%sremoved %s (gone from Keystone)\n", r.verb, shownKey(access))
}

// shownKey is an access key for a line of output: quoted if it holds
// anything but printable ASCII (anyone can give a Keystone credential an
// access key with a newline, to forge lines a script reads, or terminal
// escapes: found by a review), cut short if it is long.
func shownKey(access string) string {
	cut := access
	if len(cut) > 40 {
		cut = cut[:40]
	}
	for _, c := range []byte(access) {
		if c < 0x21 || c > 0x7e {
			cut = strconv.Quote(cut)
			break
		}
	}
	if len(access) > 40 {
		return fmt.Sprintf("%s... (%d bytes)", cut, len(access))
	}
	return cut
}

// progress prints a line every 10% of a long run (over 1000 items).
type progress struct {
	w            io.Writer
	total, count int
	start        time.Time
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) step() {
	p.count++
	if p.total >= 1000 && p.count%(p.total/10) == 0 {
		fmt.Fprintf(p.w, "  %d/%d (%d%%) in %v\n", p.count, p.total, 100*p.count/p.total, time.Since(p.start).Round(time.Millisecond))
	}
}

func (p *progress) done() {
	if p.total >= 1000 {
		fmt.Fprintf(p.w, "  done in %v\n", time.Since(p.start).Round(time.Millisecond))
	}
}
