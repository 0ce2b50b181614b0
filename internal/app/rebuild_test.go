package app

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
)

// Without Redis the guards' state is this process's: a reload with the
// same protection settings keeps it (found by a review: a reload lifted
// every lock and forgot every replay marker); other settings start anew.
func TestRebuildKeepsLocalGuards(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials.yaml")
	os.WriteFile(creds, []byte("credentials:\n- {access_key: AKA, secret: SKA, user_id: u, project_id: p}\n"), 0o600)
	cfg := configs.Default()
	cfg.Identity.Mode = configs.ModeStandalone
	cfg.Credentials.File = creds
	cfg.Routes = []configs.Route{{PathPrefix: "/", Backend: "http://127.0.0.1:8788"}}
	cfg.Protection.Replay.Enabled = true
	first, err := Build(&cfg, zap.NewNop(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	same := cfg
	next, err := Rebuild(&same, zap.NewNop(), "test", first)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	if next.local.Lockout != first.local.Lockout || next.local.Replay != first.local.Replay {
		t.Error("a reload with the same protection settings started new guards")
	}
	changed := cfg
	changed.Protection.Lockout.MaxFailures = 9
	other, err := Rebuild(&changed, zap.NewNop(), "test", next)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.local.Lockout == first.local.Lockout {
		t.Error("new protection settings kept the old guards")
	}
}
