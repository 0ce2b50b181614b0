package proxy

import (
	"strings"
	"testing"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/guard"
)

// Found by a review: replay protection fingerprinted the SigV2 Signature as
// sent, but verification compares the base64-decoded MAC. Re-encodings of
// one signature (low unused bits of the last character, '+' sent as ' ',
// CR/LF the decoder skips) all verify, and each passed replay protection.
func TestReplayProtectionKeysOnTheDecodedSignature(t *testing.T) {
	h := newHarness(t, withGuards(func(*configs.Config) Guards {
		return Guards{Replay: guard.NewSeen(1000)}
	}))
	form := signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "a"})
	sig := form.Get("Signature")
	if resp := h.post(form.Encode(), nil); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %s", resp.StatusCode, bodyOf(resp))
	}
	wantEC2Error(t, h.post(form.Encode(), nil), 400, "RequestExpired", "already used")

	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	last := strings.IndexByte(alphabet, sig[42])
	variants := []string{}
	for low := 0; low < 4; low++ {
		v := last&^3 | low
		if v != last {
			variants = append(variants, sig[:42]+string(alphabet[v])+sig[43:])
		}
	}
	variants = append(variants, sig[:10]+"\r\n"+sig[10:], sig[:20]+"\n"+sig[20:]) // skipped by encoding/base64
	replays := 0
	for _, v := range variants {
		f := signed("POST", h.host(), "/", testSecret, map[string]string{"Version": "a"})
		f.Set("Signature", v)
		if resp := h.post(f.Encode(), nil); resp.StatusCode == 200 {
			replays++
		}
	}
	if replays > 0 {
		t.Errorf("the same signed request was accepted %d more times with re-encoded signatures", replays)
	}
}
