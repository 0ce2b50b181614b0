package credstore

import (
	"context"
	"os"
	"reflect"
	"sync/atomic"
	"time"
)

// WatchedFile is a credentials file a running proxy rereads when it
// changes on disk (`creds disable` rewrites it), so that a revocation
// takes effect without a reload. A change that does not parse is reported
// and the last good records kept.
type WatchedFile struct {
	path   string
	cur    atomic.Pointer[File]
	loaded os.FileInfo // the version cur was read from, for the first Watch
}

// LoadWatchedFile loads path, as LoadFile does.
func LoadWatchedFile(path string) (*WatchedFile, error) {
	// Stat first: a change while (or after) it is read then differs from
	// this, and Watch reads it again, even if Watch starts later.
	st, _ := os.Stat(path)
	f, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	w := &WatchedFile{path: path, loaded: st}
	w.cur.Store(f)
	return w, nil
}

// Get returns the record for accessKey from the newest good version.
func (w *WatchedFile) Get(ctx context.Context, accessKey string) (Record, error) {
	return w.cur.Load().Get(ctx, accessKey)
}

// Len is the number of records in the newest good version.
func (w *WatchedFile) Len() int { return w.cur.Load().Len() }

// FileWatch says what to do about changes (see Watch).
type FileWatch struct {
	Interval time.Duration
	// Changed is called for each access key added, removed or changed,
	// after the new version is in place.
	Changed func(accessKey string)
	// Loaded reports a new version and its size; Failed a version that
	// could not be read (once per version).
	Loaded func(records int)
	Failed func(error)
}

// Watch checks the file's modification time and size every Interval until
// ctx ends, and loads a version that differs from the last one read once
// it has stayed the same for one Interval: a file written in place (an
// editor, a shell redirection) is not read half-written, or empty, which
// would revoke every key until the next check.
func (w *WatchedFile) Watch(ctx context.Context, o FileWatch) {
	seen, settling := w.loaded, os.FileInfo(nil)
	reported := ""
	fail := func(err error) { // once per distinct problem, not every tick
		if msg := err.Error(); msg != reported {
			reported = msg
			o.Failed(err)
		}
	}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := os.Stat(w.path)
		if err != nil {
			fail(err)
			continue
		}
		if sameVersion(seen, st) {
			continue
		}
		if !sameVersion(settling, st) {
			settling = st // changed since the last check: read it when it holds still
			continue
		}
		next, err := LoadFile(w.path)
		if err != nil { // perhaps caught mid-write: tried again next tick
			fail(err)
			continue
		}
		seen, reported = st, ""
		old := w.cur.Swap(next)
		if o.Loaded != nil {
			o.Loaded(next.Len())
		}
		for _, key := range changedKeys(old, next) {
			o.Changed(key)
		}
	}
}

func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size() && os.SameFile(a, b)
}

// changedKeys lists the access keys whose records differ between two
// versions (added, removed or changed).
func changedKeys(old, next *File) []string {
	var keys []string
	for k, r := range old.records {
		if n, ok := next.records[k]; !ok || !reflect.DeepEqual(r, n) {
			keys = append(keys, k)
		}
	}
	for k := range next.records {
		if _, ok := old.records[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}
