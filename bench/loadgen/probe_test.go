package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A metrics read that failed is nil, not an empty map: its counts would
// read as 0 (found by a review: a flood's "zero Keystone calls" was met
// after ec2proxy stopped answering).
func TestScrapeFailureIsNil(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `ec2proxy_requests_total{outcome="forwarded"} 12`)
	}))
	defer ok.Close()
	if m := scrape(ok.URL); m == nil || m[`ec2proxy_requests_total{outcome="forwarded"}`] != 12 {
		t.Errorf("scrape = %v; want the series", m)
	}
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer failing.Close()
	if m := scrape(failing.URL); m != nil {
		t.Errorf("scrape of a 500 = %v; want nil", m)
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if m := scrape(gone.URL); m != nil {
		t.Errorf("scrape of a closed port = %v; want nil", m)
	}
}
