package test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ec2proxy/ec2proxy/test/testenv"
)

// Modern clients with their default settings sign SigV4; through real Redis
// and Keystone they reach the backend with the demo identity.
func TestRealClientsSigV4(t *testing.T) {
	s := startStack(t, nil)
	access, secret := s.putDemoCredential()
	ks := testenv.KeystoneEnv(t)
	clients := []struct {
		name string
		args []string
	}{
		{"botocore default POST", []string{"--client", "botocore", "--action", "DescribeAvailabilityZones"}},
		{"botocore default POST with filters", []string{"--client", "botocore", "--action", "DescribeInstances",
			"--param", "Filter.1.Name=tag:Name", "--param", "Filter.1.Value.1=a b;c~d+e*é/f"}},
		{"boto2 default POST", []string{"--client", "boto2"}},
		{"boto2 default GET with filters", []string{"--client", "boto2", "--verb", "GET", "--action", "DescribeInstances",
			"--param", "Filter.1.Name=tag:Name", "--param", "Filter.1.Value.1=a b;c~d+e*é/f", "--param", "Filter.10.Name=x", "--param", "Filter.2.Name=y"}},
	}
	for _, path := range []string{"/services/Cloud/", "/"} {
		for _, c := range clients {
			t.Run(c.name+" "+path, func(t *testing.T) {
				s.backend.Reset()
				r := s.call(append([]string{"--endpoint", s.url + path, "--access", access, "--secret", secret}, c.args...)...)
				if !r.OK {
					t.Fatalf("call failed: %+v", r)
				}
				s.wantDemoIdentity(t, ks)
			})
		}
	}

	t.Run("awscli", func(t *testing.T) {
		s.backend.Reset()
		cmd := exec.Command("/usr/bin/aws", "--endpoint-url", s.url+"/", "--region", "RegionOne", "--output", "json", "ec2", "describe-regions")
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), `"RegionName": "RegionOne"`) {
			t.Fatalf("aws ec2 describe-regions: %v\n%s", err, out)
		}
		s.wantDemoIdentity(t, ks)
	})

	for _, action := range [][]string{{"--action", "DescribeRegions"}, {"--action", "DescribeInstances", "--param", "Filter.1.Name=tag:Name", "--param", "Filter.1.Value.1=a b;c"}} {
		t.Run("botocore presigned GET "+action[1], func(t *testing.T) {
			s.backend.Reset()
			var presigned struct{ URL string }
			r := s.run(append([]string{"--client", "botocore", "--endpoint", s.url + "/", "--access", access, "--secret", secret, "--presign", "300"}, action...)...)
			if err := json.Unmarshal(r, &presigned); err != nil || presigned.URL == "" {
				t.Fatalf("presign: %s %v", r, err)
			}
			status, body := get(t, presigned.URL)
			if status != 200 {
				t.Fatalf("GET presigned URL: %d %s", status, body)
			}
			s.wantDemoIdentity(t, ks)
		})
	}
	if n := s.metric("ec2proxy_keystone_requests_total", "op", "ec2tokens", "result", "ok"); n != 1 {
		t.Errorf("%v ec2tokens calls for one access key; want 1 (the exchange does not depend on the signature version)", n)
	}
	s.assertNoSecretsLogged(secret)
}

func TestRealClientsSigV4Failures(t *testing.T) {
	s := startStack(t, nil)
	access, secret := s.putDemoCredential()
	tests := []struct {
		name   string
		args   []string
		status int
		code   string
		text   string
	}{
		{"botocore wrong secret", []string{"--client", "botocore", "--secret", "0000" + secret[4:]}, 403, "SignatureDoesNotMatch", "The canonical request we calculated was"},
		{"boto2 wrong secret", []string{"--client", "boto2", "--secret", "0000" + secret[4:]}, 403, "SignatureDoesNotMatch", "The string to sign was"},
		{"botocore X-Amz-Date 10 min old", []string{"--client", "botocore", "--clock-skew", "-600"}, 400, "RequestExpired", "X-Amz-Date"},
		{"boto2 X-Amz-Date 10 min ahead", []string{"--client", "boto2", "--clock-skew", "600"}, 400, "RequestExpired", "X-Amz-Date"},
		{"botocore header changed after signing", []string{"--client", "botocore", "--tamper-header", "Content-Type=application/x-www-form-urlencoded"}, 403, "SignatureDoesNotMatch", ""},
		{"botocore body changed after signing", []string{"--client", "botocore", "--tamper-body"}, 403, "SignatureDoesNotMatch", ""},
		{"botocore unknown access key", []string{"--client", "botocore", "--access", "ffffffffffffffffffffffffffffffff"}, 401, "AuthFailure", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.backend.Reset()
			r := s.call(append([]string{"--endpoint", s.url + "/", "--access", access, "--secret", secret}, tt.args...)...)
			if r.OK || r.Status != tt.status || r.Code != tt.code || !strings.Contains(r.Message, tt.text) {
				t.Errorf("got ok=%v %d %q %q; want %d %s containing %q", r.OK, r.Status, r.Code, r.Message, tt.status, tt.code, tt.text)
			}
			if n := len(s.backend.Requests()); n != 0 {
				t.Errorf("backend received %d requests", n)
			}
		})
	}
	t.Run("presigned URL with a changed parameter", func(t *testing.T) {
		var presigned struct{ URL string }
		json.Unmarshal(s.run("--client", "botocore", "--endpoint", s.url+"/", "--access", access, "--secret", secret, "--presign", "300"), &presigned)
		status, body := get(t, strings.Replace(presigned.URL, "DescribeRegions", "DescribeInstances", 1))
		if status != 403 || !strings.Contains(body, "SignatureDoesNotMatch") {
			t.Errorf("got %d %s", status, body)
		}
	})
	t.Run("presigned URL expired", func(t *testing.T) {
		var presigned struct{ URL string }
		json.Unmarshal(s.run("--client", "botocore", "--endpoint", s.url+"/", "--access", access, "--secret", secret, "--presign", "60", "--clock-skew", "-120"), &presigned)
		status, body := get(t, presigned.URL)
		if status != 400 || !strings.Contains(body, "RequestExpired") || !strings.Contains(body, "presigned request expired") {
			t.Errorf("got %d %s", status, body)
		}
	})
}

// wantDemoIdentity checks the last request the backend got carries the demo
// user's Keystone identity.
func (s *stack) wantDemoIdentity(t *testing.T, ks testenv.Keystone) {
	t.Helper()
	got, ok := s.backend.Last()
	if !ok {
		t.Fatal("backend saw nothing")
	}
	for name, want := range map[string]string{
		"X-Identity-Status": "Confirmed",
		"X-User-Id":         ks.Var(t, "DEMO_USER_ID"),
		"X-Project-Id":      ks.Var(t, "DEMO_PROJECT_ID"),
	} {
		if g := got.Header.Values(name); len(g) != 1 || g[0] != want {
			t.Errorf("backend %s = %q; want %q", name, g, want)
		}
	}
	if got.Header.Get("X-Auth-Token") == "" || !strings.Contains(","+got.Header.Get("X-Roles")+",", ",member,") {
		t.Errorf("backend token/roles: %q %q", got.Header.Get("X-Auth-Token"), got.Header.Get("X-Roles"))
	}
}
