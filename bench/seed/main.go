// Command seed creates the benchmark's EC2 credentials and writes them
// where ec2proxy and the load generator read them:
//
//	seed keystone  -n 200    credentials of the demo user, created in Keystone
//	                         (reused on later runs) and copied into Redis
//	seed synthetic -n 100000 random credentials, in Redis only (for the RSS
//	                         measurement, against a fake Keystone)
//
// Both write access<TAB>secret lines to -out for bench/loadgen. Records
// are written with credstore's own Put (sealed with -key, as ec2proxy
// reads them with credentials.encryption_key_file), so the layout is
// always the one ec2proxy expects.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/credstore"
)

// accessPrefix marks the benchmark's credentials in Keystone, so a re-run
// reuses them instead of piling up new ones.
const accessPrefix = "bench"

type record struct{ access, secret, userID, projectID string }

func main() {
	log.SetFlags(0)
	log.SetPrefix("seed: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: seed keystone|synthetic [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	n := fs.Int("n", 200, "number of credentials")
	out := fs.String("out", "", "credentials file to write (access<TAB>secret)")
	redisAddr := fs.String("redis", "", "Redis address (required)")
	prefix := fs.String("prefix", "ec2bench:v1:", "Redis key prefix (ec2proxy's redis.key_prefix)")
	keyFile := fs.String("key", "", "encryption key file (credentials.encryption_key_file); empty: plain text")
	ks := keystoneFlags(fs)
	_ = fs.Parse(os.Args[2:])
	if *redisAddr == "" || *out == "" {
		log.Fatal("-redis and -out are required")
	}

	ctx := context.Background()
	var recs []record
	var err error
	switch os.Args[1] {
	case "keystone":
		recs, err = ks.ensure(ctx, *n)
	case "synthetic":
		recs = synthetic(*n)
	default:
		err = fmt.Errorf("unknown mode %q: keystone or synthetic", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
	t0 := time.Now()
	if err := writeRedis(ctx, *redisAddr, *prefix, *keyFile, recs); err != nil {
		log.Fatal(err)
	}
	if err := writeCreds(*out, recs); err != nil {
		log.Fatal(err)
	}
	log.Printf("%d credentials in Redis (prefix %s, %.1fs) and %s", len(recs), *prefix, time.Since(t0).Seconds(), *out)
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newAccessKey looks like Keystone's (32 hex digits) but starts with
// accessPrefix.
func newAccessKey() string { return accessPrefix + randomHex(32)[len(accessPrefix):] }

func synthetic(n int) []record {
	recs := make([]record, n)
	for i := range recs {
		recs[i] = record{access: newAccessKey(), secret: randomHex(32), userID: randomHex(32), projectID: randomHex(32)}
	}
	return recs
}

// writeRedis stores every record with credstore.Redis.Put (one MULTI/EXEC
// each), 32 at a time.
func writeRedis(ctx context.Context, addr, prefix, keyFile string, recs []record) error {
	var keyring *credstore.Keyring
	if keyFile != "" {
		var err error
		if keyring, err = credstore.LoadKeyring(keyFile); err != nil {
			return err
		}
	}
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 32})
	defer c.Close()
	store := credstore.NewRedis(c, prefix, keyring)
	created := time.Now()
	work := make(chan record)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				err := store.Put(ctx, credstore.Record{AccessKey: r.access, Secret: r.secret,
					UserID: r.userID, ProjectID: r.projectID, Enabled: true, CreatedAt: created})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
send:
	for _, r := range recs {
		select {
		case work <- r:
		case err = <-errs:
			break send
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	if err != nil {
		return fmt.Errorf("redis %s: %w", addr, err)
	}
	return nil
}

func writeCreds(path string, recs []record) error {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.access + "\t" + r.secret + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
