package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
)

type keystone struct {
	url                                 string
	adminUser, adminPassword, adminProj string
	userID, projectID                   string
	token                               string
	http                                *http.Client
}

func keystoneFlags(fs *flag.FlagSet) *keystone {
	k := &keystone{http: &http.Client{}}
	fs.StringVar(&k.url, "keystone", "", "Keystone base URL (keystone mode)")
	fs.StringVar(&k.adminUser, "admin-user", "admin", "Keystone admin user (domain Default)")
	fs.StringVar(&k.adminPassword, "admin-password", "admin-secret", "its password")
	fs.StringVar(&k.adminProj, "admin-project", "admin", "its project (domain Default)")
	fs.StringVar(&k.userID, "user-id", "", "owner of the credentials (the demo user)")
	fs.StringVar(&k.projectID, "project-id", "", "their project (the demo project)")
	return k
}

// ensure returns n benchmark credentials of the user, creating the missing
// ones (POST /v3/credentials as admin with an explicit blob, as
// keystone-real.md §3 describes).
func (k *keystone) ensure(ctx context.Context, n int) ([]record, error) {
	if k.url == "" || k.userID == "" || k.projectID == "" {
		return nil, fmt.Errorf("keystone mode needs -keystone, -user-id and -project-id")
	}
	k.url = strings.TrimSuffix(strings.TrimSuffix(k.url, "/"), "/v3")
	if err := k.login(ctx); err != nil {
		return nil, err
	}
	have, err := k.list(ctx)
	if err != nil {
		return nil, err
	}
	missing := max(n-len(have), 0)
	created := make(chan record, missing)
	errs := make(chan error, missing)
	var wg sync.WaitGroup
	work := make(chan struct{}, missing)
	for range missing {
		work <- struct{}{}
	}
	close(work)
	for range min(missing, 8) { // Keystone runs two uwsgi workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				r := record{access: newAccessKey(), secret: randomHex(32), userID: k.userID, projectID: k.projectID}
				if err := k.create(ctx, r); err != nil {
					errs <- err
					return
				}
				created <- r
			}
		}()
	}
	wg.Wait()
	close(created)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	for r := range created {
		have = append(have, r)
	}
	sort.Slice(have, func(i, j int) bool { return have[i].access < have[j].access })
	log.Printf("keystone: %d benchmark credentials reused, %d created", n-missing, missing)
	return have[:n], nil
}

func (k *keystone) login(ctx context.Context) error {
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": k.adminUser, "password": k.adminPassword, "domain": map[string]string{"id": "default"}}}},
		"scope": map[string]any{"project": map[string]any{"name": k.adminProj, "domain": map[string]string{"id": "default"}}},
	}}
	resp, err := k.do(ctx, "POST", "/v3/auth/tokens?nocatalog", body, http.StatusCreated)
	if err != nil {
		return err
	}
	k.token = resp.Header.Get("X-Subject-Token")
	return nil
}

func (k *keystone) list(ctx context.Context) ([]record, error) {
	q := url.Values{"user_id": {k.userID}, "type": {"ec2"}}
	resp, err := k.do(ctx, "GET", "/v3/credentials?"+q.Encode(), nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var got struct {
		Credentials []struct {
			ProjectID string `json:"project_id"`
			Blob      string `json:"blob"`
		} `json:"credentials"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		return nil, fmt.Errorf("keystone credential list: %w", err)
	}
	var out []record
	for _, c := range got.Credentials {
		var blob struct{ Access, Secret string }
		if json.Unmarshal([]byte(c.Blob), &blob) != nil || c.ProjectID != k.projectID ||
			!strings.HasPrefix(blob.Access, accessPrefix) || blob.Secret == "" {
			continue
		}
		out = append(out, record{access: blob.Access, secret: blob.Secret, userID: k.userID, projectID: k.projectID})
	}
	return out, nil
}

func (k *keystone) create(ctx context.Context, r record) error {
	blob, _ := json.Marshal(map[string]string{"access": r.access, "secret": r.secret})
	_, err := k.do(ctx, "POST", "/v3/credentials", map[string]any{"credential": map[string]any{
		"type": "ec2", "user_id": r.userID, "project_id": r.projectID, "blob": string(blob),
	}}, http.StatusCreated)
	return err
}

// do sends one JSON request and checks the status; the body of a
// successful answer is read into memory so the connection is reused.
func (k *keystone) do(ctx context.Context, method, path string, body any, want int) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, k.url+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if k.token != "" {
		req.Header.Set("X-Auth-Token", k.token)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("keystone %s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("keystone %s %s answered %d: %.300s", method, path, resp.StatusCode, data)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}
