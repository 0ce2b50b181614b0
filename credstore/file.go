package credstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"

	"go.yaml.in/yaml/v3"
)

// File is a store kept in a YAML file, which the proxy reads (see
// WatchedFile) and the CLI changes (each change rewrites the file under a
// lock, or once for a Batch of them):
//
//	credentials:
//	  - access_key: 0123...
//	    secret: abcd...
//	    user_id: ...
//	    project_id: ...
//	    enabled: true        # default true
//	    roles: [member]      # standalone identity
type File struct {
	path    string
	records map[string]Record
	// batch is set while Batch runs: changes apply to records, held under
	// Batch's lock, and Batch saves them once.
	batch bool
}

type fileFormat struct {
	Credentials []fileRecord `yaml:"credentials"`
}

// fileRecord lets enabled default to true.
type fileRecord struct {
	Record  `yaml:",inline"`
	Enabled *bool `yaml:"enabled"`
}

// LoadFile reads and checks a credentials file.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	f, err := ParseFile(data, path)
	if err != nil {
		return nil, err
	}
	f.path = path
	return f, nil
}

// NewFile is an empty store that Put and Delete save to path, for a
// credentials file that does not exist yet.
func NewFile(path string) *File {
	return &File{path: path, records: map[string]Record{}}
}

// ParseFile parses the YAML of a credentials file; name is used in errors.
func ParseFile(data []byte, name string) (*File, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty, no credentials yet
		return nil, fmt.Errorf("credstore: %s: %w", name, err)
	}
	for { // a second document would be read by nobody, and erased by the next change
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || len(more.Content) > 0 && more.Content[0].Tag != "!!null" {
			return nil, fmt.Errorf("credstore: %s: the file must hold one YAML document: merge what follows the '---' line into the list above", name)
		}
	}
	s := &File{records: make(map[string]Record, len(f.Credentials))}
	for i, fr := range f.Credentials {
		r := fr.Record
		r.Enabled = fr.Enabled == nil || *fr.Enabled
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("credstore: %s: credentials[%d]: %w", name, i, err)
		}
		if _, dup := s.records[r.AccessKey]; dup {
			return nil, fmt.Errorf("credstore: %s: credentials[%d]: access key %s appears twice", name, i, r.AccessKey)
		}
		s.records[r.AccessKey] = r
	}
	return s, nil
}

// Get returns the record for accessKey.
func (s *File) Get(_ context.Context, accessKey string) (Record, error) {
	r, ok := s.records[accessKey]
	if !ok {
		return Record{}, ErrNotFound
	}
	return r, nil
}

// Path is the file's path ("" when parsed from memory).
func (s *File) Path() string { return s.path }

// Len is the number of records.
func (s *File) Len() int { return len(s.records) }

// List calls fn for every record, sorted by access key.
func (s *File) List(_ context.Context, fn func(Record, error) error) error {
	keys := make([]string, 0, len(s.records))
	for k := range s.records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := fn(s.records[k], nil); err != nil {
			return err
		}
	}
	return nil
}

// Put creates or replaces a record and rewrites the file. A running proxy
// checks the file every second (WatchedFile) and applies the change.
func (s *File) Put(_ context.Context, r Record) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	return s.change(func(records map[string]Record) error {
		records[r.AccessKey] = r
		return nil
	})
}

// Update replaces accessKey's record with fn's answer, given the record
// as the file holds it now (exists false: none), under the file's lock. An
// error from fn is returned as it is, and nothing is written.
func (s *File) Update(_ context.Context, accessKey string, fn func(cur Record, exists bool) (Record, error)) error {
	return s.change(func(records map[string]Record) error {
		cur, ok := records[accessKey]
		if !ok {
			cur = Record{AccessKey: accessKey}
		}
		r, err := fn(cur, ok)
		if err != nil {
			return err
		}
		if err := checkUpdated(accessKey, r); err != nil {
			return err
		}
		records[accessKey] = r
		return nil
	})
}

// Delete removes a record and rewrites the file.
func (s *File) Delete(_ context.Context, accessKey string) error {
	return s.change(func(records map[string]Record) error {
		if _, ok := records[accessKey]; !ok {
			return ErrNotFound
		}
		delete(records, accessKey)
		return nil
	})
}

// DeleteIf removes accessKey's record if remove says so of the record as
// the file holds it now, under the file's lock; it reports whether it did.
// A missing record is ErrNotFound.
func (s *File) DeleteIf(_ context.Context, accessKey string, remove func(cur Record, err error) bool) (bool, error) {
	deleted := false
	err := s.change(func(records map[string]Record) error {
		cur, ok := records[accessKey]
		switch {
		case !ok:
			return ErrNotFound
		case remove(cur, nil):
			delete(records, accessKey)
			deleted = true
		}
		return nil
	})
	return deleted, err
}

// Batch runs fn with the file locked, and every change fn makes through
// s (Put, Update, Delete, DeleteIf) applied to the records as the file
// holds them at the start; the file is then written once. Each change
// otherwise reads and rewrites the whole file: a sync of n credentials
// into an empty file cost n rewrites of up to n records (45 s for 1000).
// If fn fails, or the file cannot be written, nothing is written and the
// error is returned. Like the rest of File, not for concurrent use: other
// processes wait for the lock, other goroutines must not use s meanwhile.
func (s *File) Batch(fn func() error) error {
	if s.batch {
		return errors.New("credstore: Batch within Batch")
	}
	return s.change(func(records map[string]Record) error {
		before := maps.Clone(records)
		s.batch = true
		defer func() { s.batch = false }()
		if err := fn(); err != nil {
			return err
		}
		if reflect.DeepEqual(before, s.records) {
			return errUnchanged // a sync round that changed nothing: a rewrite would make every proxy reload
		}
		return nil
	})
}

// errUnchanged tells change that there is nothing to write.
var errUnchanged = errors.New("credstore: nothing changed")

// change applies fn to the records the file holds now, read again under
// an exclusive lock (a lock file beside it), and saves them: two commands
// changing one file keep each other's changes (found by a review: each
// wrote back the copy it had read, and 'creds sync -watch' undid a 'creds
// disable' made while it ran). On failure the records are the file's.
func (s *File) change(fn func(map[string]Record) error) error {
	if s.batch { // within Batch: locked and read already, written at its end
		return fn(s.records)
	}
	if s.path == "" {
		return errors.New("credstore: this credential file was not loaded from a path")
	}
	path, err := s.target()
	if err != nil {
		return err
	}
	lock, err := lockFor(path)
	if err != nil {
		return err
	}
	defer lock.Close() // and the lock with it
	switch cur, err := LoadFile(path); {
	case err == nil:
		s.records = cur.records
	case errors.Is(err, os.ErrNotExist): // a new file (NewFile): what it holds so far
	default:
		return err
	}
	saved, done := maps.Clone(s.records), false
	defer func() {
		if !done { // a Batch's fn may have changed some before it failed, or panicked
			s.records = saved
		}
	}()
	err = fn(s.records)
	if errors.Is(err, errUnchanged) {
		err = nil
	} else if err == nil {
		err = s.save(path)
	}
	done = err == nil
	return err
}

// lockFor takes the exclusive lock of path's lock file, beside it. The
// lock file gets the credentials file's owner, group and mode when root
// runs this: created as root's 0600 by an operator's first command, it
// kept the service account's own 'creds sync -watch' from ever changing
// the file (found by a review). It is opened for writing, as an exclusive
// flock on NFS or CIFS needs, and read-only where only reading is allowed
// (enough for flock on a local file system).
func lockFor(path string) (*os.File, error) {
	name := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
	lock, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrPermission) {
		lock, err = os.OpenFile(name, os.O_RDONLY, 0)
	}
	if errors.Is(err, os.ErrPermission) {
		// Say what to do: typically root made it before the file was
		// given to the service account.
		return nil, fmt.Errorf("credstore: %w: the lock of %s belongs to %s and the file to %s: run `chown %s %s`, or run this command once as root, which does that", err, path, owner(name), owner(path), owner(path), name)
	} else if err != nil {
		return nil, fmt.Errorf("credstore: %w", err)
	}
	if err := shareWithFile(lock, path); err != nil {
		lock.Close()
		return nil, fmt.Errorf("credstore: %s: %w", lock.Name(), err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return nil, fmt.Errorf("credstore: locking %s: %w", lock.Name(), err)
	}
	return lock, nil
}

// owner is name's owner and group as chown takes them ("uid:gid"), or "?"
// if that cannot be read.
func owner(name string) string {
	st, err := os.Stat(name)
	if err != nil {
		return "?"
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("%d:%d", sys.Uid, sys.Gid)
	}
	return "?"
}

// shareWithFile gives lock path's owner, group and mode (less any access
// for other users) as far as the caller may: root all of them, the lock's
// owner its mode.
func shareWithFile(lock *os.File, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return nil // a new file: it will be the caller's, as the lock is
	}
	lst, err := lock.Stat()
	if err != nil {
		return err
	}
	want, ok := st.Sys().(*syscall.Stat_t)
	have, ok2 := lst.Sys().(*syscall.Stat_t)
	me := uint32(os.Geteuid())
	if !ok || !ok2 || me != 0 && have.Uid != me {
		return nil // not ours to change
	}
	if perm := st.Mode().Perm() &^ 0o007; lst.Mode().Perm() != perm {
		if err := lock.Chmod(perm); err != nil {
			return err
		}
	}
	if me == 0 && (have.Uid != want.Uid || have.Gid != want.Gid) {
		return lock.Chown(int(want.Uid), int(want.Gid))
	}
	return nil
}

// target is the file a change reads, locks and replaces: s.path with its
// symbolic links followed. Replacing the link itself turned it into a
// file of its own, left the file it pointed to (which the proxies may
// read) unchanged, and locked beside the link, so a command given the
// file's real path did not wait for this one (found by a review).
func (s *File) target() (string, error) {
	path, err := filepath.EvalSymlinks(s.path)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, os.ErrNotExist):
		if _, lerr := os.Lstat(s.path); lerr == nil {
			return "", fmt.Errorf("credstore: %s is a symbolic link to a file that does not exist", s.path)
		}
		return s.path, nil // a new file
	}
	return "", fmt.Errorf("credstore: %w", err)
}

// save writes the records to path (s.path's target) atomically
// (temporary file, then rename), with the owner, group and mode the file
// had, less any access for other users (0600 and the caller's for a new
// one).
func (s *File) save(path string) error {
	doc := fileFormat{Credentials: []fileRecord{}}
	_ = s.List(context.Background(), func(r Record, _ error) error {
		enabled := r.Enabled
		doc.Credentials = append(doc.Credentials, fileRecord{Record: r, Enabled: &enabled})
		return nil
	})
	data, err := yaml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("credstore: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	err = keepOwnership(tmp, path)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("credstore: writing %s: %w", path, err)
	}
	return nil
}

// keepOwnership gives tmp, which replaces path, path's owner, group and
// permissions, less other users' (the file holds secrets). The proxy, running as its own user, reads a file its
// operator keeps as root:ec2proxy 0640: a rewrite as root's 0600 made it
// unreadable to the service, which then kept the old records and failed
// its next start (found by a review). An owner that cannot be kept (the
// caller is neither root nor the owner) is an error, not a silent change.
func keepOwnership(tmp *os.File, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := tmp.Chmod(st.Mode().Perm() &^ 0o007); err != nil { // secrets: never for every user
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
		return fmt.Errorf("keeping its owner and group (%d:%d), which the proxy may need to read it: %w; run this as root or as its owner", sys.Uid, sys.Gid, err)
	}
	return nil
}
