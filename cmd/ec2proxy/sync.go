package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
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
from the usual OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME,
OS_USER_DOMAIN_NAME and OS_PROJECT_DOMAIN_NAME variables (source an
admin-openrc.sh); any other account is refused (Keystone would show it only
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
	store, done, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer done()
	if *watch == 0 {
		_, err := syncOnce(kc, store, *dryRun, stdout, stderr)
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	for {
		if _, err := syncOnce(kc, store, *dryRun, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "%s sync failed (will retry): %v\n", time.Now().Format(time.RFC3339), err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

// adminKeystone builds a Keystone client from OS_* variables, falling back
// to the configured auth URL.
func adminKeystone(cfg *configs.Config) (*keystoneclient.Client, error) {
	env := func(name, fallback string) string {
		if v := os.Getenv(name); v != "" {
			return v
		}
		return fallback
	}
	url := env("OS_AUTH_URL", cfg.Keystone.AuthURL)
	user, password := os.Getenv("OS_USERNAME"), os.Getenv("OS_PASSWORD")
	if url == "" || user == "" || password == "" {
		return nil, errors.New("creds sync needs an admin account: set OS_AUTH_URL (or keystone.auth_url), OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME, e.g. by sourcing an admin-openrc.sh")
	}
	return keystoneclient.New(keystoneclient.Config{
		AuthURL: url, Username: user, Password: password,
		UserDomainName:    env("OS_USER_DOMAIN_NAME", "Default"),
		ProjectName:       env("OS_PROJECT_NAME", "admin"),
		ProjectDomainName: env("OS_PROJECT_DOMAIN_NAME", "Default"),
		Timeout:           30 * time.Second,
	})
}

type syncCounts struct{ added, updated, removed, unchanged, skipped int }

// syncOnce makes the store match Keystone and reports what changed.
func syncOnce(kc *keystoneclient.Client, store credStore, dryRun bool, stdout, stderr io.Writer) (syncCounts, error) {
	var n syncCounts
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fromKeystone, err := kc.ListEC2Credentials(ctx)
	if err != nil {
		return n, fmt.Errorf("listing Keystone's EC2 credentials: %w", err)
	}
	fmt.Fprintf(stderr, "keystone has %d EC2 credential(s)\n", len(fromKeystone))
	existing := map[string]credstore.Record{}
	err = store.List(ctx, func(r credstore.Record, err error) error {
		if err == nil {
			existing[r.AccessKey] = r
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("listing the store: %w", err)
	}
	verb := ""
	if dryRun {
		verb = "would be "
	}
	progress := newProgress(stderr, len(fromKeystone))
	seen := map[string]bool{}
	for _, kr := range fromKeystone {
		progress.step()
		seen[kr.Access] = true
		want := credstore.Record{AccessKey: kr.Access, Secret: kr.Secret, UserID: kr.UserID, ProjectID: kr.ProjectID,
			TrustID: kr.TrustID, Enabled: true, Source: "keystone", CreatedAt: time.Now().UTC().Truncate(time.Second)}
		old, ok := existing[kr.Access]
		switch {
		case ok && old.Source != "keystone":
			fmt.Fprintf(stderr, "skipped %s: a credential created here has the same access key\n", kr.Access)
			n.skipped++
			continue
		case ok && old.Secret == want.Secret && old.UserID == want.UserID && old.ProjectID == want.ProjectID && old.TrustID == want.TrustID:
			n.unchanged++
			continue
		case ok:
			want.Enabled, want.CreatedAt = old.Enabled, old.CreatedAt // a local disable survives a sync
			n.updated++
			fmt.Fprintf(stdout, "%supdated %s (user %s, project %s)\n", verb, kr.Access, kr.UserID, kr.ProjectID)
		default:
			n.added++
			fmt.Fprintf(stdout, "%sadded %s (user %s, project %s)\n", verb, kr.Access, kr.UserID, kr.ProjectID)
		}
		if !dryRun {
			if err := store.Put(ctx, want); err != nil {
				return n, err
			}
		}
	}
	for access, r := range existing {
		if r.Source != "keystone" || seen[access] {
			continue
		}
		n.removed++
		fmt.Fprintf(stdout, "%sremoved %s (gone from Keystone)\n", verb, access)
		if !dryRun {
			if err := store.Delete(ctx, access); err != nil && !errors.Is(err, credstore.ErrNotFound) {
				return n, err
			}
		}
	}
	progress.done()
	fmt.Fprintf(stdout, "sync%s: %d added, %d updated, %d removed, %d unchanged, %d skipped\n",
		map[bool]string{true: " (dry run, nothing changed)", false: ""}[dryRun], n.added, n.updated, n.removed, n.unchanged, n.skipped)
	return n, nil
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
