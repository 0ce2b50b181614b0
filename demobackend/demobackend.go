// Package demobackend is a small stand-in for the compute EC2 API: it answers
// a few read-only actions with EC2 XML, shows the identity ec2proxy
// forwarded, and records what it received so tests can check the header
// contract. It is for the demo and the tests, not for production.
package demobackend

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Recorded is one request as the backend received it.
type Recorded struct {
	Method string
	URI    string
	Header http.Header
	Body   string
	Action string
}

// Backend is an http.Handler.
type Backend struct {
	mu       sync.Mutex
	recorded []Recorded
	// Max bounds how many requests are kept (default 1000).
	Max int
}

// Requests returns a copy of what was received, oldest first.
func (b *Backend) Requests() []Recorded {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Recorded(nil), b.recorded...)
}

// Reset forgets what was received.
func (b *Backend) Reset() {
	b.mu.Lock()
	b.recorded = nil
	b.mu.Unlock()
}

// Last is the most recent request, or false.
func (b *Backend) Last() (Recorded, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.recorded) == 0 {
		return Recorded{}, false
	}
	return b.recorded[len(b.recorded)-1], true
}

const xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

func (b *Backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	params, _ := url.ParseQuery(r.URL.RawQuery)
	if r.Method == http.MethodPost {
		if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				params[k] = append(params[k], v...)
			}
		}
	}
	action := params.Get("Action")
	b.mu.Lock()
	b.recorded = append(b.recorded, Recorded{Method: r.Method, URI: r.RequestURI, Header: r.Header.Clone(), Body: string(body), Action: action})
	if max := b.maxKept(); len(b.recorded) > max {
		b.recorded = b.recorded[len(b.recorded)-max:]
	}
	b.mu.Unlock()

	reqID := r.Header.Get("X-Request-Id")
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("X-Demo-Identity", fmt.Sprintf("user=%s project=%s roles=%s",
		r.Header.Get("X-User-Id"), r.Header.Get("X-Project-Id"), r.Header.Get("X-Roles")))
	if r.Header.Get("X-Identity-Status") != "Confirmed" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>AuthFailure</Code><Message>no confirmed identity</Message></Error></Errors><RequestID>%s</RequestID></Response>`, html.EscapeString(reqID))
		return
	}
	var inner string
	switch action {
	case "DescribeRegions":
		inner = `<regionInfo><item><regionName>RegionOne</regionName><regionEndpoint>` + html.EscapeString(r.Host) + `</regionEndpoint></item></regionInfo>`
	case "DescribeAvailabilityZones":
		inner = `<availabilityZoneInfo><item><zoneName>nova</zoneName><zoneState>available</zoneState><regionName>RegionOne</regionName><messageSet/></item></availabilityZoneInfo>`
	case "DescribeInstances":
		inner = `<reservationSet/>`
	case "DescribeKeyPairs":
		inner = `<keySet/>`
	case "DescribeImages":
		inner = `<imagesSet/>`
	case "DescribeSecurityGroups":
		inner = `<securityGroupInfo/>`
	default:
		inner = `<return>true</return>`
	}
	name := action
	if name == "" || strings.ContainsAny(name, "<>&\"' ") {
		name = "Unknown"
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<%sResponse xmlns="%s"><requestId>%s</requestId>%s</%sResponse>`,
		name, xmlns, html.EscapeString(reqID), inner, name)
}

func (b *Backend) maxKept() int {
	if b.Max > 0 {
		return b.Max
	}
	return 1000
}
