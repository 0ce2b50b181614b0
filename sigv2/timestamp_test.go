package sigv2

import (
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 39, 21, 0, time.UTC)
	tests := []struct {
		give string
		want time.Time
	}{
		{give: "2026-11-25T10:39:21Z", want: base},
		{give: "2026-11-25T10:39:21z", want: base},
		{give: "2026-11-25t10:39:21Z", want: base},
		{give: "2026-11-25T10:39:21", want: base}, // no zone: UTC
		{give: "2026-11-25T10:39:21.1Z", want: base.Add(100 * time.Millisecond)},
		{give: "2026-11-25T10:39:21.123Z", want: base.Add(123 * time.Millisecond)},
		{give: "2026-11-25T10:39:21.123456Z", want: base.Add(123456 * time.Microsecond)},
		{give: "2026-11-25T10:39:21.123456789Z", want: base.Add(123456789 * time.Nanosecond)},
		{give: "2026-11-25T10:39:21.000000001Z", want: base.Add(time.Nanosecond)},
		{give: "2026-11-25T10:39:21.5", want: base.Add(500 * time.Millisecond)},
		{give: "2026-11-25T10:39:21.5+01:00", want: base.Add(500*time.Millisecond - time.Hour)},
		{give: "2026-11-25T12:39:21+02:00", want: base},
		{give: "2026-11-25T12:39:21+0200", want: base},
		{give: "2026-11-25T05:09:21-0530", want: base},
		{give: "2026-11-25T05:09:21-05:30", want: base},
		{give: "2026-11-25T10:39:21+00:00", want: base},
		{give: "2026-11-25T10:39:21-00:00", want: base},
		{give: "2026-11-25T23:59:59+23:59", want: time.Date(2026, 11, 25, 0, 0, 59, 0, time.UTC)},
		{give: "2026-11-25T00:00:00-23:59", want: time.Date(2026, 11, 25, 23, 59, 0, 0, time.UTC)},
		{give: "2024-02-29T00:00:00Z", want: time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)},
		{give: "2026-12-31T23:59:59Z", want: time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)},
		{give: "2026-01-01T00:00:00+01:00", want: time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, ok := ParseTimestamp([]byte(tt.give))
			if !ok || !got.Equal(tt.want) {
				t.Errorf("ParseTimestamp(%q) = %v, %v; want %v, true", tt.give, got, ok, tt.want)
			}
			if ok && got.Location() != time.UTC {
				t.Errorf("ParseTimestamp(%q) is in %v; want UTC", tt.give, got.Location())
			}
		})
	}
}

func TestParseTimestampRefused(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "empty", give: ""},
		{name: "word", give: "yesterday"},
		{name: "only a date", give: "2026-11-25"},
		{name: "date and T", give: "2026-11-25T"},
		{name: "no seconds", give: "2026-11-25T10:39Z"},
		{name: "space separator", give: "2026-11-25 10:39:21Z"},
		{name: "slashes", give: "2026/11/25T10:39:21Z"},
		{name: "dots in the time", give: "2026-11-25T10.39.21Z"},
		{name: "basic format", give: "20261125T103921Z"},
		{name: "Unix time", give: "1795603161"},
		{name: "RFC 1123", give: "Wed, 25 Nov 2026 10:39:21 GMT"},
		{name: "2026-02-30", give: "2026-02-30T10:39:21Z"},
		{name: "2026-02-29 not a leap year", give: "2026-02-29T10:39:21Z"},
		{name: "2026-04-31", give: "2026-04-31T10:39:21Z"},
		{name: "day 00", give: "2026-11-00T10:39:21Z"},
		{name: "day 32", give: "2026-01-32T10:39:21Z"},
		{name: "month 00", give: "2026-00-25T10:39:21Z"},
		{name: "month 13", give: "2026-13-25T10:39:21Z"},
		{name: "hour 24", give: "2026-11-25T24:00:00Z"},
		{name: "minute 60", give: "2026-11-25T10:60:21Z"},
		{name: "second 60", give: "2026-11-25T10:39:60Z"},
		{name: "leap second", give: "2016-12-31T23:59:60Z"},
		{name: "10 fraction digits", give: "2026-11-25T10:39:21.1234567890Z"},
		{name: "empty fraction", give: "2026-11-25T10:39:21.Z"},
		{name: "empty fraction at the end", give: "2026-11-25T10:39:21."},
		{name: "comma fraction", give: "2026-11-25T10:39:21,123Z"},
		{name: "fraction with a letter", give: "2026-11-25T10:39:21.12aZ"},
		{name: "offset +2:00", give: "2026-11-25T10:39:21+2:00"},
		{name: "offset +02", give: "2026-11-25T10:39:21+02"},
		{name: "offset +02:0", give: "2026-11-25T10:39:21+02:0"},
		{name: "offset +020", give: "2026-11-25T10:39:21+020"},
		{name: "offset +02000", give: "2026-11-25T10:39:21+02000"},
		{name: "offset +24:00", give: "2026-11-25T10:39:21+24:00"},
		{name: "offset +02:60", give: "2026-11-25T10:39:21+02:60"},
		{name: "offset with a letter", give: "2026-11-25T10:39:21+0a:00"},
		{name: "Z and offset", give: "2026-11-25T10:39:21Z+02:00"},
		{name: "UTC name", give: "2026-11-25T10:39:21UTC"},
		{name: "trailing garbage after Z", give: "2026-11-25T10:39:21Zjunk"},
		{name: "trailing space", give: "2026-11-25T10:39:21Z "},
		{name: "leading space", give: " 2026-11-25T10:39:21Z"},
		{name: "trailing garbage without zone", give: "2026-11-25T10:39:21x"},
		{name: "ZZ", give: "2026-11-25T10:39:21ZZ"},
		{name: "signed year", give: "+2026-11-25T10:39:21Z"},
		{name: "two-digit year", give: "26-11-25T10:39:21Z"},
		{name: "sign in a field", give: "2026-+1-25T10:39:21Z"},
		{name: "one-digit fields", give: "2026-1-5T1:3:2Z   "},
		{name: "NUL", give: "2026-11-25T10:39:21\x00"},
		{name: "trailing colon in the offset", give: "2026-11-26T00:00:00+13:20:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := ParseTimestamp([]byte(tt.give)); ok {
				t.Errorf("ParseTimestamp(%q) = %v, true; want false", tt.give, got)
			}
		})
	}
}
