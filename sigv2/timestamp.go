package sigv2

import "time"

// ParseTimestamp parses the ISO 8601 forms EC2 clients send in Timestamp and
// Expires: YYYY-MM-DDThh:mm:ss, optionally with a fraction of a second (the
// AWS Java SDK sends milliseconds), then Z, an offset (+hh:mm or +hhmm), or
// nothing (taken as UTC, as Keystone does).
func ParseTimestamp(b []byte) (time.Time, bool) {
	// YYYY-MM-DDThh:mm:ss is 19 bytes.
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && '0' <= rest[n] && rest[n] <= '9' {
			n++
		}
		frac := rest[1:n]
		if len(frac) == 0 || len(frac) > 9 {
			return time.Time{}, false
		}
		f, _ := digits(frac)
		for i := len(frac); i < 9; i++ {
			f *= 10
		}
		nsec, rest = f, rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case rest[0] == '+' || rest[0] == '-':
		var hh, mm int
		var okH, okM bool
		switch {
		case len(rest) == 6 && rest[3] == ':':
			hh, okH = digits(rest[1:3])
			mm, okM = digits(rest[4:6])
		case len(rest) == 5:
			hh, okH = digits(rest[1:3])
			mm, okM = digits(rest[3:5])
		}
		if !okH || !okM || hh > 23 || mm > 59 {
			return time.Time{}, false
		}
		offset = hh*3600 + mm*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	if t.Day() != day { // 2026-02-30 would silently become March 2
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, len(b) > 0
}
