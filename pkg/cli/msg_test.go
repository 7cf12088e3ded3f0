package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestMsgUntrusted writes messages carrying what an image or a server
// could put in a string: each comes out as lines "prog: ..." with no
// control byte, none longer than MaxLine (and a bit of escaping), at most
// MaxLines of them.
func TestMsgUntrusted(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		lines      int
	}{
		{"escape", "bad \x1b]0;owned\x07 title \x1b[2J", 1},
		{"carriage-return", "fine\rprocs-load: forged", 1},
		{"long", strings.Repeat("x", 1<<20), 1},
		{"many-lines", strings.Repeat("line\n", 1000), MaxLines},
		{"invalid-utf8", "a\xff\xfeb\u009b2J", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			m := NewMsg("procs-load", &b)
			m.Error(errors.New(tc.text))
			out := strings.TrimSuffix(b.String(), "\n")
			ls := strings.Split(out, "\n")
			if len(ls) != tc.lines {
				t.Errorf("Error(%.20q...) wrote %d lines; want %d", tc.text, len(ls), tc.lines)
			}
			for _, l := range ls {
				if !strings.HasPrefix(l, "procs-load: ") {
					t.Errorf("line %.40q does not start with the program's name", l)
				}
				if len(l) > 4*MaxLine+64 {
					t.Errorf("line of %d bytes; want at most about %d", len(l), MaxLine)
				}
				for _, r := range l {
					if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
						t.Errorf("line %.40q holds control character %#x", l, r)
						break
					}
				}
			}
		})
	}
}
