package policy

// nova's EC2 API and ec2-api call the method getattr(controller,
// camelcase_to_underscore(Action)): the regex
// (((?<=[a-z])[A-Z])|([A-Z](?![A-Z]|$))) puts '_' before an upper-case
// letter that follows a lower-case one or is followed by neither another
// upper-case letter nor the end, then the name is lower-cased and stripped
// of '_' at both ends. "registerImage", "REGISTERImage", "register_image"
// and "_RegisterImage" all run register_image: rules are found by that
// name, or a respelled action was decided by "default" instead of its own
// stricter rule (found by a review).

// maxActionLen bounds the actions looked up: longer ones are refused.
const maxActionLen = 128

// appendDispatchName appends the method name action dispatches to. ok is
// false for an action with a byte outside ASCII: Python lower-cases some
// of those to ASCII letters (the Kelvin sign to 'k'), so such an action
// may run a method this cannot name, and it must not be decided by a
// rule for another.
func appendDispatchName(dst, action []byte) (_ []byte, ok bool) {
	start := len(dst)
	for i, c := range action {
		switch {
		case c >= 0x80:
			return dst, false
		case 'A' <= c && c <= 'Z':
			afterLower := i > 0 && 'a' <= action[i-1] && action[i-1] <= 'z'
			beforeUpperOrEnd := i+1 == len(action) || 'A' <= action[i+1] && action[i+1] <= 'Z'
			if afterLower || !beforeUpperOrEnd {
				dst = append(dst, '_')
			}
			dst = append(dst, c+'a'-'A')
		default:
			dst = append(dst, c)
		}
	}
	name := dst[start:]
	for len(name) > 0 && name[0] == '_' {
		name = name[1:]
	}
	for len(name) > 0 && name[len(name)-1] == '_' {
		name = name[:len(name)-1]
	}
	return append(dst[:start], name...), true
}

// dispatchName is appendDispatchName for a rule's action name.
func dispatchName(action string) (string, bool) {
	b, ok := appendDispatchName(nil, []byte(action))
	return string(b), ok
}
