package credstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeKey(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(GenerateKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKeyring(t *testing.T) {
	k1, k2 := writeKey(t, "k1"), writeKey(t, "k2")
	ring, err := LoadKeyring(k1)
	if err != nil {
		t.Fatal(err)
	}
	sealed := ring.Encrypt("AK", "the secret")
	if strings.Contains(sealed, "the secret") || !strings.HasPrefix(sealed, "v1:") {
		t.Fatalf("sealed = %q", sealed)
	}
	if got, current, err := ring.Decrypt("AK", sealed); err != nil || got != "the secret" || !current {
		t.Errorf("Decrypt = %q, %v, %v", got, current, err)
	}
	if _, _, err := ring.Decrypt("OTHER", sealed); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ciphertext moved to another record: %v; want ErrCorrupt", err)
	}
	rotated, _ := LoadKeyring(k2, k1)
	if got, current, err := rotated.Decrypt("AK", sealed); err != nil || got != "the secret" || current {
		t.Errorf("with the old key in the ring: %q, current=%v, %v", got, current, err)
	}
	onlyNew, _ := LoadKeyring(k2)
	if _, _, err := onlyNew.Decrypt("AK", sealed); !errors.Is(err, ErrNoKey) || errors.Is(err, ErrCorrupt) {
		t.Errorf("without the key: %v; want ErrNoKey (this replica's fault, not the record's)", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("not hex"), 0o600)
	if _, err := LoadKeyring(bad); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
		t.Errorf("malformed key file: %v", err)
	}
}

// In Redis the secret is sealed; rotation rewrites it; a missing key stops
// reencryption without losing anything.
func TestRedisEncryptedAndRotated(t *testing.T) {
	plain, client := newTestRedis(t)
	k1, k2 := writeKey(t, "k1"), writeKey(t, "k2")
	ring1, _ := LoadKeyring(k1)
	s1 := NewRedis(client, plain.prefix, ring1)
	ctx := context.Background()
	for _, ak := range []string{"AK1", "AK2", "AK3"} {
		if err := s1.Put(ctx, Record{AccessKey: ak, Secret: "secret-" + ak, UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	plain.Put(ctx, Record{AccessKey: "AK4", Secret: "secret-AK4", UserID: "u", ProjectID: "p", Enabled: true}) // written before encryption was on
	h, _ := client.HGetAll(ctx, s1.Key("AK1")).Result()
	if h["secret"] != "" || !strings.HasPrefix(h["secret_enc"], "v1:") {
		t.Errorf("stored hash %v; want only secret_enc", h)
	}
	if _, err := plain.Get(ctx, "AK1"); !errors.Is(err, ErrNoKey) {
		t.Errorf("reading a sealed secret without a key: %v; want ErrNoKey", err)
	}

	ring21, _ := LoadKeyring(k2, k1)
	s21 := NewRedis(client, plain.prefix, ring21)
	if r, err := s21.Get(ctx, "AK2"); err != nil || r.Secret != "secret-AK2" {
		t.Errorf("old key in the ring: %+v, %v", r, err)
	}
	n, err := s21.Reencrypt(ctx, nil)
	if err != nil || n != 4 {
		t.Errorf("Reencrypt = %d, %v; want 4 rewritten (3 old-key, 1 plain)", n, err)
	}
	ring2, _ := LoadKeyring(k2)
	s2 := NewRedis(client, plain.prefix, ring2)
	count := 0
	err = s2.List(ctx, func(r Record, err error) error {
		if err != nil || r.Secret != "secret-"+r.AccessKey {
			t.Errorf("after rotation %s: %v", r.AccessKey, err)
		}
		count++
		return nil
	})
	if err != nil || count != 4 {
		t.Errorf("List = %d records, %v", count, err)
	}
	if n, err := s2.Reencrypt(ctx, nil); err != nil || n != 0 {
		t.Errorf("second Reencrypt = %d, %v; want nothing to do", n, err)
	}

	ring3, _ := LoadKeyring(writeKey(t, "k3")) // k2 forgotten: nothing can be decrypted
	if _, err := NewRedis(client, plain.prefix, ring3).Reencrypt(ctx, nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("Reencrypt without the old key = %v; want ErrNoKey and no change", err)
	}
	if r, err := s2.Get(ctx, "AK3"); err != nil || r.Secret != "secret-AK3" {
		t.Errorf("record changed by a failed reencrypt: %+v %v", r, err)
	}
}
