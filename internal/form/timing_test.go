package form

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// Parameter orders real clients send for DescribeInstances with 12
// filters: boto 2 sorts them (but for the Signature, appended); botocore
// numbers filters (1, 2, ... 10, which byte order puts after 1) and appends
// the signing parameters.
var (
	boto2Order = "AWSAccessKeyId&Action&Filter.1.Name&Filter.1.Value.1&Filter.1.Value.2&Filter.1.Value.3&Filter.1.Value.4&Filter.1.Value.5" +
		"&Filter.10.Name&Filter.10.Value.1&Filter.11.Name&Filter.11.Value.1&Filter.12.Name&Filter.12.Value.1&Filter.2.Name&Filter.2.Value.1" +
		"&Filter.2.Value.2&Filter.3.Name&Filter.3.Value.1&Filter.4.Name&Filter.4.Value.1&Filter.5.Name&Filter.5.Value.1&Filter.6.Name" +
		"&Filter.6.Value.1&Filter.7.Name&Filter.7.Value.1&Filter.8.Name&Filter.8.Value.1&Filter.9.Name&Filter.9.Value.1" +
		"&SignatureMethod&SignatureVersion&Timestamp&Version&Signature"
	botocoreOrder = "Action&Version&Filter.1.Name&Filter.1.Value.1&Filter.1.Value.2&Filter.1.Value.3&Filter.1.Value.4&Filter.1.Value.5" +
		"&Filter.2.Name&Filter.2.Value.1&Filter.2.Value.2&Filter.3.Name&Filter.3.Value.1&Filter.4.Name&Filter.4.Value.1&Filter.5.Name" +
		"&Filter.5.Value.1&Filter.6.Name&Filter.6.Value.1&Filter.7.Name&Filter.7.Value.1&Filter.8.Name&Filter.8.Value.1&Filter.9.Name" +
		"&Filter.9.Value.1&Filter.10.Name&Filter.10.Value.1&Filter.11.Name&Filter.11.Value.1&Filter.12.Name&Filter.12.Value.1" +
		"&AWSAccessKeyId&SignatureVersion&SignatureMethod&Timestamp&Signature"
)

// BenchmarkSortByName sorts the parameter lists real clients send, restored
// from a copy before each sort (the copy is measured too, as "restore").
func BenchmarkSortByName(b *testing.B) {
	for _, tc := range []struct{ name, order string }{
		{"boto2", boto2Order},
		{"botocore", botocoreOrder},
		{"reversed", reverseItems(botocoreOrder)},
	} {
		var p Params
		if problem, _ := p.Parse([]byte(tc.order)); problem != OK {
			b.Fatal(problem)
		}
		received := append([]pair(nil), p.pairs...)
		b.Run(tc.name+"/sort", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				copy(p.pairs, received)
				p.SortByName()
			}
		})
		b.Run(tc.name+"/restore", func(b *testing.B) {
			for b.Loop() {
				copy(p.pairs, received)
			}
		})
	}
}

func reverseItems(s string) string {
	items := strings.Split(s, "&")
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	return strings.Join(items, "&")
}

// BenchmarkParse parses, then sorts and encodes as a signature check does,
// the requests of sigv2's real-client vectors.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("../../sigv2/testdata/vectors.json")
	if err != nil {
		b.Fatal(err)
	}
	var vectors []struct{ Name, Method, Target, Body string }
	if err := json.Unmarshal(data, &vectors); err != nil {
		b.Fatal(err)
	}
	for _, v := range vectors {
		if !slices.Contains([]string{"published-openstack-docs-describe-availability-zones", "boto2-get-sha256-filters", "botocore-post-sha256-filters"}, v.Name) {
			continue
		}
		raw := []byte(v.Body)
		if v.Method == "GET" {
			_, query, _ := strings.Cut(v.Target, "?")
			raw = []byte(query)
		}
		for _, encode := range []bool{false, true} {
			name := v.Name + "/parse"
			if encode {
				name += "+sort+encode"
			}
			b.Run(name, func(b *testing.B) {
				var p Params
				var dst []byte
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				for b.Loop() {
					p.Reset()
					if problem, _ := p.Parse(raw); problem != OK {
						b.Fatal(problem)
					}
					if encode {
						p.SortByName()
						dst = p.AppendCanonicalQuery(dst[:0], p.Index("Signature"))
					}
				}
			})
		}
	}
}
