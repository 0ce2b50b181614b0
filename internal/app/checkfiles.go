package app

import (
	"fmt"
	"os"
	"strings"

	"go.uber.org/zap"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/policy"
)

// namedFile is a file the configuration names, with the setting naming it.
type namedFile struct{ setting, path string }

func keyFiles(c configs.Credentials) []namedFile {
	files := []namedFile{{"credentials.encryption_key_file", c.EncryptionKeyFile}}
	for i, path := range c.OldEncryptionKeyFiles {
		files = append(files, namedFile{fmt.Sprintf("credentials.old_encryption_key_files[%d]", i), path})
	}
	return files
}

// CheckFiles reads every file cfg names, as Build and serve would, and
// reports each one that cannot be used, named by its setting: check-config
// lists them all, where Build stops at the first.
func CheckFiles(cfg *configs.Config) configs.Problems {
	var problems configs.Problems
	check := func(setting string, err error) {
		if err != nil {
			problems = append(problems, setting+": "+err.Error())
		}
	}
	readable := func(setting, path string) {
		if path != "" {
			_, err := os.ReadFile(path)
			check(setting, err)
		}
	}
	// A password file must hold one (found by a review: an empty one got
	// "auth URL, username and password are required" from Keystone's
	// client, naming neither the setting nor the file).
	password := func(setting, path string) {
		if path == "" {
			return
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.TrimSpace(string(b)) == "" {
			err = fmt.Errorf("%s is empty", path)
		}
		check(setting, err)
	}
	switch cfg.Credentials.Store {
	case configs.StoreFile:
		_, err := credstore.LoadFile(cfg.Credentials.File)
		check("credentials.file", err)
	case configs.StoreRedis:
		if cfg.Credentials.EncryptionKeyFile != "" {
			for _, f := range keyFiles(cfg.Credentials) {
				_, err := credstore.LoadKeyring(f.path)
				check(f.setting, err)
			}
		}
		readable("redis.password_file", cfg.Redis.PasswordFile) // empty: no AUTH (a warning, see FileWarnings)
		if cfg.Redis.TLS.Enabled {
			_, err := configs.ClientTLS(cfg.Redis.TLS.TLSClient)
			check("redis.tls", err)
		}
	}
	if cfg.Identity.Mode == configs.ModeKeystone {
		password("keystone.service_user.password_file", cfg.Keystone.ServiceUser.PasswordFile)
		password("keystone.application_credential.secret_file", cfg.Keystone.ApplicationCredential.SecretFile)
		if configs.URLScheme(cfg.Keystone.AuthURL) == "https" {
			_, err := configs.ClientTLS(cfg.Keystone.TLS)
			check("keystone.tls", err)
		}
	}
	for _, r := range cfg.Routes {
		if configs.URLScheme(r.Backend) == "https" {
			_, err := configs.ClientTLS(cfg.Backend.TLS)
			check("backend.tls", err)
			break // one TLS setting for every backend
		}
	}
	_, err := TLSListenerConfig(cfg.Server.TLS.CertFile, cfg.Server.TLS.KeyFile, zap.NewNop())
	check("server.tls", err)
	if cfg.Policy.Enabled && cfg.Policy.File != "" {
		_, err := policy.Open(cfg.Policy.File, policy.FileOptions{})
		check("policy.file", err)
	}
	return problems
}

// FileWarnings are what check-config and serve warn of in the files the
// configuration names: secrets (keys, passwords, plaintext credentials,
// TLS private keys) that every user of the machine can read or change,
// and an empty Redis password file (Redis is then used without AUTH, as
// before; an empty Keystone one is an error). A group bit is not flagged:
// root:ec2proxy 0640 is the usual way to share a file with the service.
func FileWarnings(cfg *configs.Config) []string {
	files := []namedFile{{"redis.password_file", cfg.Redis.PasswordFile},
		{"keystone.service_user.password_file", cfg.Keystone.ServiceUser.PasswordFile},
		{"keystone.application_credential.secret_file", cfg.Keystone.ApplicationCredential.SecretFile},
		{"server.tls.key_file", cfg.Server.TLS.KeyFile},
		{"redis.tls.key_file", cfg.Redis.TLS.KeyFile},
		{"keystone.tls.key_file", cfg.Keystone.TLS.KeyFile},
		{"backend.tls.key_file", cfg.Backend.TLS.KeyFile}}
	if cfg.Credentials.Store == configs.StoreFile {
		files = append(files, namedFile{"credentials.file", cfg.Credentials.File})
	} else if cfg.Credentials.EncryptionKeyFile != "" {
		files = append(files, keyFiles(cfg.Credentials)...)
	}
	var warnings []string
	for _, f := range files {
		if f.path == "" {
			continue
		}
		// Regular files only: the demo's credentials.file is /dev/null, and
		// the advice to chmod it would break the machine (found by a review).
		if st, err := os.Stat(f.path); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o006 != 0 {
			warnings = append(warnings, fmt.Sprintf("%s: %s is mode %04o: every user of this machine can %s it; chmod o-rwx %s",
				f.setting, f.path, st.Mode().Perm(), otherUsersMay(st.Mode().Perm()), f.path))
		}
	}
	if p := cfg.Redis.PasswordFile; p != "" && cfg.Credentials.Store == configs.StoreRedis {
		if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == "" {
			warnings = append(warnings, fmt.Sprintf("redis.password_file: %s is empty: Redis is used without a password", p))
		}
	}
	return warnings
}

// otherUsersMay says what a file's "other" permission bits allow.
func otherUsersMay(perm os.FileMode) string {
	switch perm & 0o006 {
	case 0o004:
		return "read"
	case 0o002:
		return "change"
	}
	return "read and change"
}
