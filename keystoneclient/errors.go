package keystoneclient

import (
	"errors"
	"fmt"
)

// Errors the client returns; every error wraps exactly one of them.
var (
	// ErrRejected: Keystone refused the credential (unknown, deleted,
	// disabled user or project, no role on the project, trust gone).
	ErrRejected = errors.New("keystoneclient: credential rejected by keystone")
	// ErrUnavailable: Keystone could not be asked or answered nonsense
	// (network, timeout, 5xx, bad service account, unparsable reply).
	ErrUnavailable = errors.New("keystoneclient: keystone unavailable")
	// ErrNotPermitted: the client's own account may not do what was asked
	// (list every credential without the admin role).
	ErrNotPermitted = errors.New("keystoneclient: the account is not permitted")
)

func errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}
