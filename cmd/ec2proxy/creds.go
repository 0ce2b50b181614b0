package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
)

const credsUsage = `Usage: ec2proxy creds <command> [flags]

Manage EC2 credentials in the configured store (Redis or the credentials file).

Commands:
  create     create a credential with random keys for a user and project
  list       list credentials (secrets hidden unless -show-secrets)
  show       show one credential
  disable    refuse a credential without deleting it
  enable     accept a disabled credential again
  delete     delete a credential
  rotate     give a credential a new secret key
  sync       import EC2 credentials from Keystone (see 'creds sync -h')
  reencrypt  re-seal every secret with the current encryption key
  genkey     a new encryption key (for credentials.encryption_key_file): -o FILE writes a new file, mode 0600

Every command takes -config FILE (default $EC2PROXY_CONFIG).
`

func creds(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 { // a usage error: the help goes with the other errors
		fmt.Fprint(stderr, credsUsage)
		return errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, credsUsage)
		return nil
	}
	sub := map[string]func([]string, io.Writer, io.Writer) error{
		"create": credsCreate, "list": credsList, "show": credsShow,
		"disable": func(a []string, o, e io.Writer) error { return credsSetEnabled("disable", false, a, o, e) },
		"enable":  func(a []string, o, e io.Writer) error { return credsSetEnabled("enable", true, a, o, e) },
		"delete":  credsDelete, "rotate": credsRotate, "sync": credsSync, "reencrypt": credsReencrypt, "genkey": credsGenkey,
	}
	run, ok := sub[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ec2proxy creds: unknown command %q\n\n%s", args[0], credsUsage)
		return errUsage
	}
	if err := run(args[1:], stdout, stderr); err != nil {
		return subcommandError{args[0], err}
	}
	return nil
}

// randomKey is 32 hex characters from crypto/rand, like Keystone's keys.
func randomKey() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func timeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func credsCreate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("creds create", "-user-id ID -project-id ID [flags]", stderr)
	path := configFlag(fs)
	user := fs.String("user-id", "", "Keystone user id (required)")
	project := fs.String("project-id", "", "Keystone project id (required)")
	trust := fs.String("trust-id", "", "Keystone trust id, for a trust-scoped credential")
	access := fs.String("access", "", "access key to use instead of a random one")
	roles := fs.String("roles", "", "comma-separated roles, used as the identity in standalone mode")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" || *project == "" {
		fmt.Fprintln(stderr, "creds create: -user-id and -project-id are required")
		fs.Usage()
		return errUsage
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	store, done, err := openStoreCreating(cfg, stderr)
	if err != nil {
		return err
	}
	defer done()
	r := credstore.Record{AccessKey: *access, Secret: randomKey(), UserID: *user, ProjectID: *project, TrustID: *trust,
		Enabled: true, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	if r.AccessKey == "" {
		r.AccessKey = randomKey()
	}
	r.Roles = splitRoles(*roles)
	ctx, cancel := timeout()
	defer cancel()
	// Checked and written in one step (the file's lock, a Redis WATCH): a
	// look first and a Put after replaced a record another `creds create
	// -access` made in between, and both reported success (a review).
	exists := fmt.Errorf("access key %s already exists", r.AccessKey)
	err = store.Update(ctx, r.AccessKey, func(_ credstore.Record, found bool) (credstore.Record, error) {
		if found {
			return credstore.Record{}, exists
		}
		return r, nil
	})
	if err != nil {
		return err
	}
	noteFileReload(store, stderr)
	if *asJSON {
		return json.NewEncoder(stdout).Encode(r)
	}
	fmt.Fprintf(stdout, "access key  %s\nsecret key  %s\nuser        %s\nproject     %s\n", r.AccessKey, r.Secret, r.UserID, r.ProjectID)
	fmt.Fprintf(stderr, "Keep the secret key now: `creds list` hides it (`creds show %s -show-secret` prints it).\n", r.AccessKey)
	if cfg.Identity.Mode == configs.ModeKeystone {
		fmt.Fprintln(stderr, "note: identity.mode is keystone: Keystone must hold this credential too, or every request with it is refused (AuthFailure). Create credentials in Keystone (openstack ec2 credentials create) and 'creds sync -keystone' them instead.")
	}
	return nil
}

func credsList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("creds list", "[-json] [-show-secrets]", stderr)
	path := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON, one record per line")
	showSecrets := fs.Bool("show-secrets", false, "include secret keys")
	fs.BoolVar(showSecrets, "show-secret", false, "the same, as creds show spells it")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, store, done, err := openConfiguredStore(*path)
	if err != nil {
		return err
	}
	defer done()
	// No deadline for the whole listing: a million records take about
	// 40 s from a loopback Redis, and one 30 s deadline listed nothing
	// (found by a review). Each Redis call still times out on its own
	// (redis.read_timeout, redis.write_timeout).
	ctx := context.Background()
	var records []credstore.Record
	broken := 0
	start := time.Now()
	err = store.List(ctx, func(r credstore.Record, err error) error {
		if n := len(records) + broken + 1; n%100_000 == 0 {
			fmt.Fprintf(stderr, "  %d read in %v\n", n, time.Since(start).Round(time.Second))
		}
		if err != nil {
			fmt.Fprintf(stderr, "warning: %v\n", err)
			broken++
			return nil
		}
		if !*showSecrets {
			r.Secret = ""
		}
		records = append(records, r)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(records, func(i, j int) bool { return records[i].AccessKey < records[j].AccessKey })
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range records {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		printTable(stdout, records, *showSecrets)
	}
	if broken > 0 {
		return fmt.Errorf("%d record(s) could not be read", broken)
	}
	return nil
}

func printTable(w io.Writer, records []credstore.Record, withSecrets bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "ACCESS KEY\tUSER\tPROJECT\tTRUST\tENABLED\tSOURCE\tCREATED"
	if withSecrets {
		header += "\tSECRET"
	}
	fmt.Fprintln(tw, header)
	for _, r := range records {
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%t\t%s\t%s", r.AccessKey, r.UserID, r.ProjectID, orDash(r.TrustID), r.Enabled,
			orDash(r.Source), r.CreatedAt.Format(time.RFC3339))
		if withSecrets {
			line += "\t" + r.Secret
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneCredential parses "[-config FILE] ACCESS_KEY" and opens the store.
// onCredential runs a command that takes one access key: it parses the
// flags (extra adds the command's own), opens the configured store and
// calls fn with a bounded context.
func onCredential(name string, args []string, stderr io.Writer, extra func(*flagSet), fn func(ctx context.Context, store credStore, access string) error) error {
	fs := newFlags(name, "ACCESS_KEY", stderr)
	path := configFlag(fs)
	if extra != nil {
		extra(fs)
	}
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, errHelp) {
			return err
		}
		return errUsage
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "%s: give exactly one access key\n", name)
		fs.Usage()
		return errUsage
	}
	_, store, done, err := openConfiguredStore(*path)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := timeout()
	defer cancel()
	return fn(ctx, store, positional[0])
}

func getRecord(ctx context.Context, store credStore, access string) (credstore.Record, error) {
	r, err := store.Get(ctx, access)
	if errors.Is(err, credstore.ErrNotFound) {
		return r, fmt.Errorf("no credential with access key %s", access)
	}
	return r, err
}

func credsShow(args []string, stdout, stderr io.Writer) error {
	var asJSON, showSecret *bool
	return onCredential("creds show", args, stderr, func(fs *flagSet) {
		asJSON = fs.Bool("json", false, "print JSON")
		showSecret = fs.Bool("show-secret", false, "include the secret key")
		fs.BoolVar(showSecret, "show-secrets", false, "the same, as creds list spells it")
	}, func(ctx context.Context, store credStore, access string) error {
		r, err := getRecord(ctx, store, access)
		if err != nil {
			return err
		}
		if !*showSecret {
			r.Secret = ""
		}
		if *asJSON {
			return json.NewEncoder(stdout).Encode(r)
		}
		printTable(stdout, []credstore.Record{r}, *showSecret)
		return nil
	})
}

func credsSetEnabled(verb string, enabled bool, args []string, stdout, stderr io.Writer) error {
	return onCredential("creds "+verb, args, stderr, nil, func(ctx context.Context, store credStore, access string) error {
		// An Update, not a Get and a Put: a sync that rewrites the record
		// meanwhile (a new secret) is not undone (found by a review).
		err := store.Update(ctx, access, func(cur credstore.Record, exists bool) (credstore.Record, error) {
			if !exists {
				return cur, fmt.Errorf("no credential with access key %s", access)
			}
			cur.Enabled = enabled
			return cur, nil
		})
		if err != nil {
			return err
		}
		if _, file := store.(*credstore.File); file {
			fmt.Fprintf(stdout, "%sd %s\n", verb, access)
		} else {
			fmt.Fprintf(stdout, "%sd %s (proxies notice within credentials.cache_ttl)\n", verb, access)
		}
		noteFileReload(store, stderr)
		return nil
	})
}

// noteFileReload tells the operator when a change to the credentials file
// applies: a revocation they believe done must not wait silently.
func noteFileReload(store credStore, stderr io.Writer) {
	if f, ok := store.(*credstore.File); ok {
		fmt.Fprintf(stderr, "note: running proxies apply changes to %s within two seconds (they check it every second)\n", f.Path())
	}
}

func credsDelete(args []string, stdout, stderr io.Writer) error {
	return onCredential("creds delete", args, stderr, nil, func(ctx context.Context, store credStore, access string) error {
		r, _ := store.Get(ctx, access) // unreadable or gone: deleted all the same
		if err := store.Delete(ctx, access); errors.Is(err, credstore.ErrNotFound) {
			return fmt.Errorf("no credential with access key %s", access)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", access)
		if r.Source == "keystone" {
			fmt.Fprintf(stderr, "note: %s came from Keystone: the next 'creds sync -keystone' adds it again, enabled. To refuse it for good, delete it in Keystone (openstack ec2 credentials delete %s); to refuse it here, 'creds disable' it (a sync keeps that)\n", access, access)
		}
		noteFileReload(store, stderr)
		return nil
	})
}

func credsRotate(args []string, stdout, stderr io.Writer) error {
	return onCredential("creds rotate", args, stderr, nil, func(ctx context.Context, store credStore, access string) error {
		var r credstore.Record
		err := store.Update(ctx, access, func(cur credstore.Record, exists bool) (credstore.Record, error) {
			switch {
			case !exists:
				return cur, fmt.Errorf("no credential with access key %s", access)
			case cur.Source == "keystone":
				return cur, fmt.Errorf("%s is managed by Keystone (creds sync): rotate it in Keystone, then sync; a different secret here would make Keystone refuse it", access)
			}
			cur.Secret = randomKey()
			r = cur
			return cur, nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "access key  %s\nsecret key  %s\n", r.AccessKey, r.Secret)
		noteFileReload(store, stderr)
		return nil
	})
}

func credsGenkey(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("creds genkey", "[-o FILE]", stderr)
	out := fs.String("o", "", "write the key to FILE, a new file of mode 0600 (\"-\" or none: standard output)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	key := credstore.GenerateKey()
	if *out == "" || *out == "-" {
		// "genkey > FILE" makes FILE with the shell's umask: often 0644.
		if f, ok := stdout.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
				fmt.Fprintf(stderr, "warning: the key goes to a file of mode %04o that others can read: chmod 600 it, or use -o FILE\n", st.Mode().Perm())
			}
		}
		fmt.Fprint(stdout, key)
		return nil
	}
	// O_EXCL: a new file, never an existing one (or what a symlink there
	// points to) overwritten with a key, or a key lost.
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out) // ours (O_EXCL): no half-written key left behind
		return err
	}
	fmt.Fprintf(stderr, "wrote a new encryption key to %s (mode 0600)\n", *out)
	return nil
}

func credsReencrypt(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("creds reencrypt", "[-config FILE]", stderr)
	path := configFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, store, done, err := openConfiguredStore(*path)
	if err != nil {
		return err
	}
	defer done()
	r, ok := store.(*credstore.Redis)
	if !ok {
		return errors.New("applies to the redis store only; the credentials file is not encrypted")
	}
	n, err := r.Reencrypt(context.Background(), func(examined int) {
		fmt.Fprintf(stderr, "examined %d records...\n", examined)
	})
	if unreadable := (*credstore.UnreadableError)(nil); errors.As(err, &unreadable) {
		fmt.Fprintf(stdout, "re-sealed %d secret(s) with the current key\n", n)
		return fmt.Errorf("%w\nadd the key each was sealed with to credentials.old_encryption_key_files and run this again, or delete the record (ec2proxy creds delete ACCESS_KEY) and create it anew", err)
	}
	if err != nil {
		return fmt.Errorf("after re-sealing %d secret(s): %w", n, err)
	}
	fmt.Fprintf(stdout, "re-sealed %d secret(s) with the current key\n", n)
	return nil
}

// parseInterspersed parses flags wherever they are among the arguments
// ("show AK -json" as well as "show -json AK") and returns the others.
func parseInterspersed(fs *flagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
