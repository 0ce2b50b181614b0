package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/test/testenv"
)

func newKeyring(t *testing.T) *credstore.Keyring {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(b)), 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := credstore.LoadKeyring(p)
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

func syncTestRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	prefix := "ec2proxy-test:" + t.Name() + ":"
	t.Cleanup(func() {
		if keys, _ := client.Keys(context.Background(), prefix+"*").Result(); len(keys) > 0 {
			client.Del(context.Background(), keys...)
		}
		client.Close()
	})
	return client, prefix
}

// A sync run on a host whose key file is stale, or absent, leaves the
// fleet's records as they are (found by a review: it rewrote them, sealed
// with its old key, which the proxies lack, or in plain text, and said
// "0 failed").
func TestSyncLeavesRecordsItCannotDecrypt(t *testing.T) {
	client, prefix := syncTestRedis(t)
	ctx := context.Background()
	fleet := credstore.NewRedis(client, prefix, newKeyring(t))
	for _, a := range []string{"A1", "A2"} {
		if err := fleet.Put(ctx, credstore.Record{AccessKey: a, Secret: "s-" + a, UserID: "u1", ProjectID: "p1", Enabled: true, Source: "keystone"}); err != nil {
			t.Fatal(err)
		}
	}
	kc := &keystoneList{}
	kc.set(ksCred("A1"), ksCred("A2"))
	for name, host := range map[string]*credstore.Redis{"stale key": credstore.NewRedis(client, prefix, newKeyring(t)), "no key": credstore.NewRedis(client, prefix, nil)} {
		var stdout, stderr bytes.Buffer
		if _, err := syncOnce(ctx, kc, host, false, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "2 credential(s) not synced") {
			t.Errorf("%s: sync %v; want both counted failed\n%s%s", name, err, stdout.String(), stderr.String())
		}
		for _, a := range []string{"A1", "A2"} {
			if r, err := fleet.Get(ctx, a); err != nil || r.Secret != "s-"+a {
				t.Errorf("%s: the proxies read %s as %+v, %v", name, a, r, err)
			}
		}
		if plain, _ := client.HGet(ctx, fleet.Key("A2"), "secret").Result(); plain != "" {
			t.Errorf("%s: A2's secret is in plain text", name)
		}
	}
}

// deleteDuringUpdate deletes the record after fn's first answer, before
// the write: a 'creds delete' racing the sync, which then asks fn again.
type deleteDuringUpdate struct {
	credStore
	client *redis.Client
	key    string
}

func (s deleteDuringUpdate) Update(ctx context.Context, access string, fn func(credstore.Record, bool) (credstore.Record, error)) error {
	first := true
	return s.credStore.Update(ctx, access, func(cur credstore.Record, exists bool) (credstore.Record, error) {
		r, err := fn(cur, exists)
		if first {
			first = false
			s.client.Del(ctx, s.key)
		}
		return r, err
	})
}

// Asked again after a change, sync's update starts from Keystone's
// credential afresh (found by a review: the disabled flag of the first
// answer stayed, and a re-added credential was stored disabled).
func TestSyncRetriedUpdateStartsAfresh(t *testing.T) {
	client, prefix := syncTestRedis(t)
	ctx := context.Background()
	r := credstore.NewRedis(client, prefix, nil)
	if err := r.Put(ctx, credstore.Record{AccessKey: "K1", Secret: "old", UserID: "u1", ProjectID: "p1", Enabled: false, Source: "keystone"}); err != nil {
		t.Fatal(err)
	}
	kc := &keystoneList{}
	kc.set(ksCred("K1"))
	var stdout, stderr bytes.Buffer
	if _, err := syncOnce(ctx, kc, deleteDuringUpdate{r, client, r.Key("K1")}, false, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, "K1")
	if err != nil || !strings.Contains(stdout.String(), "added K1") || !got.Enabled {
		t.Errorf("K1 re-added after a delete: %+v %v\n%s; want enabled, as a fresh add", got, err, stdout.String())
	}
}
