// Package safetext makes text that came from outside (an image, a server,
// a peer) safe to show to a person: control bytes and invalid UTF-8 are
// escaped, so that nothing can clear a screen, retitle a terminal or forge
// a line, and length is bounded, so that an error message cannot repeat a
// string of any size.
//
// Every place that prints a string taken from an image or a server goes
// through Clean (tables, listings) or Quote (inside messages).
package safetext

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxQuote is the length, in bytes of the original string, that Quote
// shows at most.
const MaxQuote = 64

// Clean returns s with every control byte (C0, DEL, C1), every other
// non-printable rune and every byte of invalid UTF-8 written as a Go
// escape (\n, \x1b, \u200b...), and cut to at most max bytes of s, with
// "..." after a cut (max <= 0: no limit). Printable text, spaces included,
// is left as it is.
func Clean(s string, max int) string {
	cut := false
	if max > 0 && len(s) > max {
		// Cut at a rune boundary.
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, cut = s[:n], true
	}
	if printable(s) {
		if cut {
			return s + "..."
		}
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case r == ' ' || strconv.IsPrint(r) && r != '\\':
			b.WriteString(s[i : i+size])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			q := strconv.QuoteRune(r) // 'x' with the escape inside
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	if cut {
		b.WriteString("...")
	}
	return b.String()
}

// Quote returns s in double quotes, escaped as Clean does and cut to
// MaxQuote bytes: the form for a string from outside inside a message.
func Quote(s string) string {
	return `"` + strings.ReplaceAll(Clean(s, MaxQuote), `"`, `\"`) + `"`
}

func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || r == '\\' || r != ' ' && !strconv.IsPrint(r) {
			return false
		}
	}
	return true
}
