package app

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/metrics"
)

// keystone.tls applies to an https Keystone URL however its scheme is
// written: a prefix test for "https://" skipped it for HTTPS://, which
// validation accepts and Go's client connects to with TLS, so a private
// CA or a client certificate was never read, and check-config did not
// check them (found by a review).
func TestKeystoneTLSReadForAnyCaseOfHTTPS(t *testing.T) {
	missingCA := filepath.Join(t.TempDir(), "absent-ca.pem")
	for _, url := range []string{"https://ks:5000", "HTTPS://ks:5000", "Https://ks:5000"} {
		cfg, err := configs.Parse([]byte(`
credentials: {file: /etc/ec2proxy/credentials.yaml}
routes: [{path_prefix: /, backend: "http://127.0.0.1:8788"}]
keystone: {auth_url: "`+url+`", service_user: {name: ec2proxy, password: a}, tls: {ca_file: `+missingCA+`}}
`), nil)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if p := CheckFiles(cfg); p == nil || !strings.Contains(p.Error(), "keystone.tls") {
			t.Errorf("%s: check-config found no problem with keystone.tls.ca_file %s (absent): %v", url, missingCA, p)
		}
		if _, err := NewKeystoneClient(cfg.Keystone, metrics.New(prometheus.NewRegistry(), "t"), nil); err == nil || !strings.Contains(err.Error(), "keystone.tls") {
			t.Errorf("%s: keystone client built without reading keystone.tls (ca_file absent): %v", url, err)
		}
	}
}
