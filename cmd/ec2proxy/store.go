package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/ec2proxy/ec2proxy/configs"
	"github.com/ec2proxy/ec2proxy/credstore"
	"github.com/ec2proxy/ec2proxy/internal/app"
)

// credStore is what the CLI needs of a credential store; the Redis and file
// stores both provide it.
type credStore interface {
	Get(ctx context.Context, accessKey string) (credstore.Record, error)
	Put(ctx context.Context, r credstore.Record) error
	// Update replaces a record with fn's answer on the record as it is
	// then (exists false: none), so a change made meanwhile is not undone.
	Update(ctx context.Context, accessKey string, fn func(cur credstore.Record, exists bool) (credstore.Record, error)) error
	Delete(ctx context.Context, accessKey string) error
	// DeleteIf removes a record if remove says so of it as it is then.
	DeleteIf(ctx context.Context, accessKey string, remove func(cur credstore.Record, err error) bool) (bool, error)
	List(ctx context.Context, fn func(credstore.Record, error) error) error
}

var (
	_ credStore = (*credstore.Redis)(nil)
	_ credStore = (*credstore.File)(nil)
)

// loadConfig reads the configuration named by -config (or $EC2PROXY_CONFIG).
func loadConfig(path string) (*configs.Config, error) {
	if path == "" {
		return nil, fmt.Errorf("no configuration: pass -config FILE or set %s", configs.EnvConfigFile)
	}
	return configs.Load(path, os.Environ())
}

// openStore opens the configured credential store. The returned function
// releases it.
func openStore(cfg *configs.Config) (credStore, func(), error) {
	if cfg.Credentials.Store == configs.StoreFile {
		f, err := credstore.LoadFile(cfg.Credentials.File)
		if err != nil {
			return nil, nil, err
		}
		return f, func() {}, nil
	}
	keyring, err := app.LoadKeyring(cfg.Credentials)
	if err != nil {
		return nil, nil, err
	}
	redis.SetLogger(quietRedis{}) // the commands say what failed, once; go-redis would add a line per dial
	client, err := app.NewRedisClient(cfg.Redis)
	if err != nil {
		return nil, nil, err
	}
	r := credstore.NewRedis(client, cfg.Redis.KeyPrefix, keyring)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Redis.DialTimeout+cfg.Redis.ReadTimeout)
	defer cancel()
	if err := r.Ping(ctx); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("redis %v: %w", cfg.Redis.Addrs, err)
	}
	return r, func() { client.Close() }, nil
}

// openStoreCreating is openStore for the commands that add credentials
// (creds create, creds sync): a credentials file that does not exist yet is
// created by the first one written (mode 0600). A sync into a new file
// failed with "no such file" where create made it.
func openStoreCreating(cfg *configs.Config, stderr io.Writer) (credStore, func(), error) {
	store, done, err := openStore(cfg)
	if cfg.Credentials.Store == configs.StoreFile && errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(stderr, "creating %s\n", cfg.Credentials.File)
		return credstore.NewFile(cfg.Credentials.File), func() {}, nil
	}
	return store, done, err
}

// openConfiguredStore loads the configuration at path and opens its store.
func openConfiguredStore(path string) (*configs.Config, credStore, func(), error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, nil, err
	}
	store, done, err := openStore(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, store, done, nil
}

// quietRedis drops go-redis's own log lines.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
