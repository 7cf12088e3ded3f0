package api

import "strings"

// An image id is IDLen characters of IDAlphabet: base32 (RFC 4648) in
// lower case, without padding, of random bytes chosen by the server.
const (
	IDAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
	IDLen      = 16
	// IDShape says it for messages.
	IDShape = "16 characters of a-z and 2-7"
)

// ValidID reports whether s has the exact shape of an id. No other string
// ever goes into a path, on either side: anything else, in particular
// anything that could be a file name or a path, is refused before it is
// used.
func ValidID(s string) bool {
	if len(s) != IDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(IDAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}
