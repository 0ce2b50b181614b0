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
		readable("redis.password_file", cfg.Redis.PasswordFile)
		if cfg.Redis.TLS.Enabled {
			_, err := configs.ClientTLS(cfg.Redis.TLS.TLSClient)
			check("redis.tls", err)
		}
	}
	if cfg.Identity.Mode == configs.ModeKeystone {
		readable("keystone.service_user.password_file", cfg.Keystone.ServiceUser.PasswordFile)
		if strings.HasPrefix(cfg.Keystone.AuthURL, "https://") {
			_, err := configs.ClientTLS(cfg.Keystone.TLS)
			check("keystone.tls", err)
		}
	}
	for _, r := range cfg.Routes {
		if strings.HasPrefix(r.Backend, "https://") {
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
