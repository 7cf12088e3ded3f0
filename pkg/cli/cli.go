package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"procs/pkg/safetext"
)

// Version is the version of procs, stamped at link time with
// -ldflags "-X procs/pkg/cli.Version=...".
var Version = "dev"

// Exit codes of procs-dump.
const (
	ExitOK      = 0 // the image was written (and the process killed unless -K)
	ExitFailure = 1 // the dump failed; the process was left running unharmed
	ExitUsage   = 2 // bad command line; nothing was done
	ExitRefused = 3 // no such process, or it holds something procs cannot carry; it was not touched
)

// Exit codes of procs-load. Otherwise procs-load exits with the status of
// the restored process, as a shell reports it (128+N after signal N).
const (
	// ExitLoadFailure means procs-load itself failed (bad usage, bad
	// image, restore failure) and left nothing running, like env(1) and
	// similar exec-style tools report their own failures.
	ExitLoadFailure = 125
)

// HintError is an error that carries a hint for the user, printed on its
// own "prog: hint: ..." line.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// WithHint returns err with a hint attached. A nil err stays nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

// Hint returns the hint attached to err, or "".
func Hint(err error) string {
	var h *HintError
	if errors.As(err, &h) {
		return h.Hint
	}
	return ""
}

// Msg is the one writer of stderr for a program. It is safe for concurrent
// use.
type Msg struct {
	Prog string

	mu       sync.Mutex
	w        io.Writer
	verbose  bool
	progress *progressLine // nil unless w is a terminal
}

// NewMsg returns a Msg writing to w for program prog. If w is a terminal,
// the Msg can draw a progress line (see Progress).
func NewMsg(prog string, w io.Writer) *Msg {
	m := &Msg{Prog: prog, w: w}
	if IsTerminal(w) {
		m.progress = &progressLine{}
	}
	return m
}

// SetVerbose turns -v lines (Logf) on or off.
func (m *Msg) SetVerbose(v bool) {
	m.mu.Lock()
	m.verbose = v
	m.mu.Unlock()
}

// Verbose reports whether -v lines are printed.
func (m *Msg) Verbose() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.verbose
}

// Bounds of a message: text may come from an image or a server, quoted
// or not, and stderr may be a terminal.
const (
	MaxLine  = 1024 // bytes of a line's text shown, at most
	MaxLines = 32   // lines of a message shown, at most
)

// lines writes each line of text with the program prefix and, if given,
// a word after it ("hint: "). Each line's control bytes are escaped and
// its length bounded (safetext.Clean), and so is the number of lines:
// nothing a message carries can clear the screen, forge a line or fill
// the terminal. Precondition: m.mu is held.
func (m *Msg) lines(word, text string) {
	m.clearProgress()
	text = strings.TrimRight(text, "\n")
	ls := strings.Split(text, "\n")
	if len(ls) > MaxLines {
		ls = append(ls[:MaxLines-1], fmt.Sprintf("... (%d more lines)", len(ls)-MaxLines+1))
	}
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(m.Prog)
		b.WriteString(": ")
		b.WriteString(word)
		b.WriteString(safetext.Clean(l, MaxLine))
		b.WriteByte('\n')
	}
	io.WriteString(m.w, b.String())
}

// Errorf prints one error message.
func (m *Msg) Errorf(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines("", fmt.Sprintf(format, args...))
}

// Warnf prints a "warning: " line: something went less well than it
// should, and the work goes on. Its signature fits restore.Options.Warn.
func (m *Msg) Warnf(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines("warning: ", fmt.Sprintf(format, args...))
}

// Hintf prints a "hint: " line.
func (m *Msg) Hintf(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines("hint: ", fmt.Sprintf(format, args...))
}

// Error prints err, then its hint if it has one.
func (m *Msg) Error(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lines("", err.Error())
	if h := Hint(err); h != "" {
		m.lines("hint: ", h)
	}
}

// Logf prints a -v line when verbose is on. Its signature fits the Log
// fields of dump.Options and restore.Options.
func (m *Msg) Logf(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.verbose {
		return
	}
	m.lines("", fmt.Sprintf(format, args...))
}
