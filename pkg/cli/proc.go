package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoProcess is the refusal to dump a process that does not exist.
var ErrNoProcess = errors.New("no such process")

// Proc names one process found in /proc.
type Proc struct {
	PID     int
	Comm    string // /proc/PID/comm
	Exe     string // target of /proc/PID/exe, "" if unreadable
	Cmdline string // argv joined with spaces
}

// String is "PID cmdline", or "PID [comm]" when the command line is empty.
func (p Proc) String() string {
	if p.Cmdline != "" {
		return fmt.Sprintf("%d %s", p.PID, p.Cmdline)
	}
	return fmt.Sprintf("%d [%s]", p.PID, p.Comm)
}

// procRoot is where proc is mounted; tests may change it.
var procRoot = "/proc"

// ReadProc reads what /proc says about pid. It fails with an error
// wrapping ErrNoProcess when there is no such process, and when pid names
// a thread rather than a process.
func ReadProc(pid int) (Proc, error) {
	if pid <= 0 {
		return Proc{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Proc{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return Proc{}, fmt.Errorf("process %d: %w", pid, unwrapPath(err))
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "Tgid:"); ok {
			if tgid, _ := strconv.Atoi(strings.TrimSpace(v)); tgid != pid && tgid > 0 {
				return Proc{}, WithHint(noProcess("%d is a thread of process %d, not a process", pid, tgid),
					fmt.Sprintf("give the process id %d", tgid))
			}
		}
	}
	p := Proc{PID: pid}
	if b, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		p.Comm = strings.TrimRight(string(b), "\n")
	}
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		p.Exe = strings.TrimSuffix(exe, " (deleted)")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		b = bytes.TrimRight(b, "\x00")
		p.Cmdline = string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
	}
	return p, nil
}

// argv0 returns the first word of the command line.
func (p Proc) argv0() string {
	if i := strings.IndexByte(p.Cmdline, ' '); i >= 0 {
		return p.Cmdline[:i]
	}
	return p.Cmdline
}

// Matches reports whether name is the process's comm, or the base name of
// its executable or of its argv[0].
func (p Proc) Matches(name string) bool {
	if name == "" {
		return false
	}
	return p.Comm == name ||
		(p.Exe != "" && filepath.Base(p.Exe) == name) ||
		(p.argv0() != "" && filepath.Base(p.argv0()) == name)
}

// FindProcs returns the processes that match name (see Proc.Matches),
// sorted by PID, leaving out the calling process, the PIDs in exclude and
// kernel threads (which have no command line).
func FindProcs(name string, exclude ...int) ([]Proc, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	skip := map[int]bool{os.Getpid(): true}
	for _, x := range exclude {
		skip[x] = true
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || skip[pid] {
			continue
		}
		p, err := ReadProc(pid)
		if err != nil || p.Cmdline == "" {
			continue // gone meanwhile, or a kernel thread or zombie
		}
		if p.Matches(name) {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// FindOne returns the one process that matches name. It fails, wrapping
// ErrNoProcess, when none or several match; the error lists those found.
func FindOne(name string, exclude ...int) (Proc, error) {
	ps, err := FindProcs(name, exclude...)
	if err != nil {
		return Proc{}, err
	}
	switch len(ps) {
	case 0:
		return Proc{}, noProcess("no process named %s", name)
	case 1:
		return ps[0], nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d processes named %s", len(ps), name)
	for _, p := range ps {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return Proc{}, WithHint(&AmbiguousError{Name: name, Procs: ps, msg: b.String()}, "give a PID instead of -n")
}

// AmbiguousError is the refusal to pick one of several processes with
// the same name.
type AmbiguousError struct {
	Name  string
	Procs []Proc
	msg   string
}

func (e *AmbiguousError) Error() string { return e.msg }

// noProcessError is a refusal that wraps ErrNoProcess with its own text.
type noProcessError struct{ msg string }

func (e *noProcessError) Error() string { return e.msg }
func (e *noProcessError) Unwrap() error { return ErrNoProcess }

func noProcess(format string, args ...any) error {
	return &noProcessError{msg: fmt.Sprintf(format, args...)}
}
