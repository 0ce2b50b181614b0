package credstore

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// redis.key_prefix is any non-empty string, and List (so Reencrypt, creds
// list and sync) takes it literally: SCAN MATCH read its glob characters
// ([ ] * ? \) as patterns, and with "ec2proxy[prod]:" nothing was listed
// (reencrypt re-sealed nothing and exited 0). A record under a prefix the
// unescaped pattern would also match is not listed.
func TestListWithGlobCharactersInPrefix(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(t)})
	defer client.Close()
	prefix := "glob-[prod]*?\\:" + t.Name() + ":"
	ctx := context.Background()
	s := NewRedis(client, prefix, nil)
	if err := s.Put(ctx, Record{AccessKey: "AK", Secret: "SK", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	defer client.Del(ctx, s.Key("AK"))
	// Matched by the prefix read as a pattern ("[prod]" is one of p, r, o, d).
	other := NewRedis(client, strings.Replace(prefix, "[prod]", "p", 1), nil)
	if err := other.Put(ctx, Record{AccessKey: "BK", Secret: "SK", UserID: "u", ProjectID: "p", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	defer client.Del(ctx, other.Key("BK"))
	var listed []string
	if err := s.List(ctx, func(r Record, _ error) error { listed = append(listed, r.AccessKey); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != "AK" {
		t.Errorf("List with key prefix %q listed %v, want [AK]", prefix, listed)
	}
}
