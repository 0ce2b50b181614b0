package credstore

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
)

// File is a read-only store loaded from a YAML file:
//
//	credentials:
//	  - access_key: 0123...
//	    secret: abcd...
//	    user_id: ...
//	    project_id: ...
//	    enabled: true        # default true
//	    roles: [member]      # standalone identity
type File struct {
	records map[string]Record
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
	return ParseFile(data, path)
}

// ParseFile parses the YAML of a credentials file; name is used in errors.
func ParseFile(data []byte, name string) (*File, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("credstore: %s: %w", name, err)
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

// Len is the number of records.
func (s *File) Len() int { return len(s.records) }
