package policy

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxFileSize bounds what File reads; real policy files are a few KiB.
const maxFileSize = 1 << 20

// FileOptions are the callbacks of a File. They run on the goroutine that
// called Check (Watch's), after the rules in use changed or a change failed;
// they must not call Check.
type FileOptions struct {
	// OnReload is called after a changed file was loaded and its rules
	// replaced the previous ones.
	OnReload func()
	// OnError is called once for each change of the file that could not
	// be read or parsed; the previous rules stay in use.
	OnError func(error)
}

// File is a policy file that reloads when it changes, like nova's policy
// cache: Check compares the file's modification time, size and identity
// (inode) with those of the version last read. Replace the file by renaming
// a complete new one over it: a file rewritten in place within the
// file system's timestamp granularity, keeping its size, goes unnoticed.
// Watch reads a changed version only once it has held still for one
// interval: a file written in place is not read half-written (a YAML file
// cut at a line end still parses, with rules missing).
type File struct {
	path string
	opts FileOptions
	cur  atomic.Pointer[Policy]

	mu       sync.Mutex
	seen     os.FileInfo // the version last tried; nil after a failed stat
	err      error       // why that version is not in use; nil if it is
	settling os.FileInfo // a new version Watch saw, read if the next tick sees it unchanged
	// unread: why the last version could not be read (opened, read), which
	// is no verdict on it: it is tried again, and reported once.
	unread string
	open   func(string) (*os.File, error) // os.Open; tests fail it
}

// Open reads and parses the policy file at path. It fails if the file cannot
// be read or has any broken rule (the error lists them all, see Errors).
func Open(path string, opts FileOptions) (*File, error) {
	p, fi, _, err := load(os.Open, path)
	if err != nil {
		return nil, err
	}
	f := &File{path: path, opts: opts, seen: fi, open: os.Open}
	f.cur.Store(p)
	return f, nil
}

// Path is the file's path as given to Open.
func (f *File) Path() string { return f.path }

// Policy returns the rules in use: the last version of the file that loaded.
func (f *File) Policy() *Policy { return f.cur.Load() }

// Check reloads the file if it changed since it was last read. reloaded
// reports that new rules are in use. A file that cannot be read or parsed
// leaves the previous rules in use and returns the error, again on every
// Check until the file changes; OnError is called only the first time.
func (f *File) Check() (reloaded bool, err error) {
	return f.checkAndNotify(false)
}

// checkAndNotify is Check; settle reads a changed version only if it is the
// one the previous call saw (Watch's ticks).
func (f *File) checkAndNotify(settle bool) (reloaded bool, err error) {
	reloaded, notify, err := f.check(settle)
	if notify {
		if err != nil && f.opts.OnError != nil {
			f.opts.OnError(err)
		} else if reloaded && f.opts.OnReload != nil {
			f.opts.OnReload()
		}
	}
	return reloaded, err
}

func (f *File) check(settle bool) (reloaded, notify bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		if f.seen == nil && f.err != nil {
			return false, false, f.err
		}
		f.seen, f.err = nil, err
		return false, true, err
	}
	if f.seen != nil && sameVersion(f.seen, fi) {
		return false, false, f.err
	}
	if settle && (f.settling == nil || !sameVersion(f.settling, fi)) {
		f.settling = fi // changed since the last tick: read it if it holds still
		return false, false, f.err
	}
	f.settling = nil
	p, read, judged, err := load(f.open, f.path)
	if !judged {
		// Not a verdict on this version (a permission fixed by chmod only
		// changes ctime; descriptors run out for a moment): recorded, it
		// kept the new file out for good (found by a review).
		notify = err.Error() != f.unread
		f.unread = err.Error()
		return false, notify, err
	}
	f.unread = ""
	if read != nil {
		fi = read
	}
	f.seen, f.err = fi, err
	if err != nil {
		return false, true, err
	}
	f.cur.Store(p)
	return true, true, nil
}

// Watch checks the file every interval until ctx ends, and reloads a
// changed version once it has stayed the same for one interval (see File).
// It does nothing if every is not positive.
func (f *File) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = f.checkAndNotify(true) // reported through the options
		}
	}
}

func sameVersion(a, b os.FileInfo) bool {
	return a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size() && os.SameFile(a, b)
}

// load reads and parses the file, and returns the version it read;
// judged: it was read whole, so its error (if any) is the version's.
func load(open func(string) (*os.File, error), path string) (p *Policy, fi os.FileInfo, judged bool, err error) {
	fh, err := open(path)
	if err != nil {
		return nil, nil, false, err
	}
	defer fh.Close()
	if fi, err = fh.Stat(); err != nil {
		return nil, nil, false, err
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxFileSize+1))
	if err != nil {
		return nil, fi, false, err
	}
	if len(data) > maxFileSize {
		return nil, fi, true, fmt.Errorf("%s: larger than %d KiB", path, maxFileSize>>10)
	}
	if p, err = Parse(data); err != nil {
		return nil, fi, true, fmt.Errorf("%s: %w", path, err)
	}
	return p, fi, true, nil
}
