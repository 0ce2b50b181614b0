package keystoneclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A list Keystone cut at its list_limit ("truncated": true), or a 200 that
// is not a credential list at all, is an error: `creds sync` deletes the
// credentials a list does not name, so a partial one would revoke keys.
func TestListEC2CredentialsRefusesPartialLists(t *testing.T) {
	const one = `{"id":"1","user_id":"u","project_id":"p","type":"ec2","blob":"{\"access\":\"AK1\",\"secret\":\"S1\"}"}`
	for _, c := range []struct {
		name, body, want string
	}{
		{"whole", `{"credentials":[` + one + `],"links":{}}`, ""},
		{"empty", `{"credentials":[]}`, ""},
		{"truncated", `{"credentials":[` + one + `],"truncated":true}`, "truncated the list at 1"},
		{"not a list", `{"error":"maintenance"}`, "has no credentials list"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v3/auth/tokens" {
					w.Header().Set("X-Subject-Token", "svc")
					w.WriteHeader(http.StatusCreated)
					fmt.Fprintf(w, `{"token":{"expires_at":%q,"roles":[{"name":"reader"},{"name":"Admin"}]}}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
					return
				}
				fmt.Fprint(w, c.body)
			}))
			defer srv.Close()
			kc, err := New(Config{AuthURL: srv.URL, Username: "admin", Password: "x", Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			list, err := kc.ListEC2Credentials(context.Background())
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("ListEC2Credentials: %v", err)
			case c.want != "" && (err == nil || !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("ListEC2Credentials = %d credentials, %v; want an ErrUnavailable saying %q", len(list), err, c.want)
			}
		})
	}
}

// Keystone answers a non-admin's list with that user's own credentials,
// not a refusal; synced, the list would remove everyone else's. The
// account's roles are checked first, and nothing is listed.
func TestListEC2CredentialsNeedsAdmin(t *testing.T) {
	listed := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/auth/tokens" {
			w.Header().Set("X-Subject-Token", "svc")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"token":{"expires_at":%q,"roles":[{"name":"member"},{"name":"reader"}]}}`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano))
			return
		}
		listed = true
		fmt.Fprint(w, `{"credentials":[]}`)
	}))
	defer srv.Close()
	kc, err := New(Config{AuthURL: srv.URL, Username: "demo", Password: "x", ProjectName: "demo", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	list, err := kc.ListEC2Credentials(context.Background())
	if !errors.Is(err, ErrNotPermitted) || !strings.Contains(err.Error(), `user "demo" has no admin role in project "demo" (its roles: member, reader)`) {
		t.Errorf("ListEC2Credentials = %d credentials, %v; want ErrNotPermitted naming the user, project and roles", len(list), err)
	}
	if listed {
		t.Error("the credentials were listed anyway")
	}
}
