package safetext

import (
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "bash -c 'sleep 1'", 0, "bash -c 'sleep 1'"},
		{"utf8", "café ☕", 0, "café ☕"},
		{"escape sequence", "x\x1b[2Jy", 0, `x\x1b[2Jy`},
		{"newline", "a\nb\r", 0, `a\nb\r`},
		{"title", "\x1b]0;owned\x07", 0, `\x1b]0;owned\a`},
		{"c1", "a\u009bb", 0, `a\u009bb`},
		{"invalid utf8", "a\xffb", 0, `a\xffb`},
		{"backslash", `a\x41`, 0, `a\\x41`},
		{"cut", "abcdef", 3, "abc..."},
		{"cut at rune", "aé", 2, "a..."},
		{"cut escaped", "\x00\x00\x00\x00", 2, `\x00\x00...`},
		{"zero width", "a\u200bb", 0, `a\u200bb`},
	} {
		if got := Clean(tc.in, tc.max); got != tc.want {
			t.Errorf("%s: Clean(%q, %d) = %q; want %q", tc.name, tc.in, tc.max, got, tc.want)
		}
	}
}

func TestQuote(t *testing.T) {
	if got, want := Quote(`say "hi"`+"\n"), `"say \"hi\"\n"`; got != want {
		t.Errorf("Quote = %s; want %s", got, want)
	}
	long := strings.Repeat("A", 1<<20)
	if got := Quote(long); len(got) > MaxQuote+8 {
		t.Errorf("Quote of 1 MiB = %d bytes; want at most %d", len(got), MaxQuote+8)
	}
}
