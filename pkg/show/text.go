package show

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"procs/format"
	"procs/pkg/cli"
	"procs/pkg/safetext"
)

// Bounds on strings from the image in the text form.
const (
	maxName = 256  // comm, host, kernel
	maxPath = 1024 // paths
	maxCmd  = 4096 // the whole command line
)

// clean escapes a string from the image for a terminal.
func clean(s string, max int) string { return safetext.Clean(s, max) }

// WriteText writes img for people: a header block about the image, a
// block per process, then what a restore needs. Every string from the
// image is escaped.
func WriteText(w io.Writer, img *Image) error {
	bw := bufio.NewWriter(w)
	t := &text{w: bw}
	t.image(img)
	for i := range img.Processes {
		t.process(&img.Processes[i])
	}
	if img.IPC != nil {
		t.ipc(img.IPC)
	}
	if img.Format != "" {
		t.needs(img)
	}
	return bw.Flush()
}

type text struct {
	w *bufio.Writer
}

// line writes "  key  value" with keys in a column of width 9 after
// indent.
func (t *text) kv(indent, key, format string, args ...any) {
	fmt.Fprintf(t.w, "%s%-9s %s\n", indent, key, fmt.Sprintf(format, args...))
}

func size(n int64) string { return cli.FormatBytes(n) }

func (t *text) image(img *Image) {
	if img.Format == "" {
		return // not even a header: the error says it all
	}
	comp := "not compressed"
	if img.Compression != "none" {
		comp = "compressed with " + img.Compression + " as a whole"
	}
	state := fmt.Sprintf("%s in %d records", size(img.Bytes), img.Records)
	if !img.Complete {
		state = fmt.Sprintf("damaged after %d sound records", img.Records)
	}
	t.kv("", "image", "procs format %s, %s, %s, %s", img.Format, img.Arch, state, comp)
	contents := size(img.PageBytes) + " of memory"
	if len(img.RecordCompression) > 0 {
		contents += fmt.Sprintf(", stored in %s (records compressed with %s)", size(img.PageStored), strings.Join(img.RecordCompression, ", "))
	}
	if img.FileBytes > 0 {
		contents += fmt.Sprintf("; %s of file contents", size(img.FileBytes))
	}
	t.kv("", "contents", "%s", contents)
	d := img.Dump
	when := "at an unknown time"
	if !d.Time.IsZero() {
		when = d.Time.Local().Format("2006-01-02 15:04:05 MST")
	}
	t.kv("", "dumped", "%s on %s (Linux %s, %s) by procs %s", when, q(d.Host), clean(d.Kernel, maxName),
		clean(d.Arch, maxName), clean(d.Procs, maxName))
}

// q escapes a name, and says "?" for an empty one.
func q(s string) string {
	if s == "" {
		return "?"
	}
	return clean(s, maxName)
}

func (t *text) process(p *Process) {
	fmt.Fprintf(t.w, "\nprocess %d %s\n", p.PID, q(p.Comm))
	const in = "  "
	if z := p.Zombie; z != nil {
		how := fmt.Sprintf("exited with %d", z.Exit)
		if z.Signal != "" {
			how = "killed by " + z.Signal
			if z.Core {
				how += " (core dumped)"
			}
		}
		t.kv(in, "zombie", "%s, not yet collected by its parent", how)
		if p.PGID != 0 && p.PGID == p.PID {
			t.kv(in, "group", "%d (its leader)", p.PGID)
		}
		t.kv(in, "creds", "%s", creds(p.Creds))
		return
	}
	if p.Stopped != "" {
		t.kv(in, "stopped", "by %s", p.Stopped)
	}
	if p.Subreaper {
		t.kv(in, "reaper", "a child subreaper: orphans below it come to it")
	}
	if len(p.Cmdline) > 0 {
		cut := ""
		if p.CmdlineCut {
			cut = " ..."
		}
		t.kv(in, "command", "%s%s", commandLine(p.Cmdline), cut)
	}
	t.kv(in, "exe", "%s", q(p.Exe))
	t.kv(in, "cwd", "%s", q(p.Cwd))
	if p.Root != "/" && p.Root != "" {
		t.kv(in, "root", "%s", q(p.Root))
	}
	if p.PGID != 0 {
		lead := ""
		if p.PGID == p.PID {
			lead = " (its leader)"
		}
		t.kv(in, "group", "%d%s", p.PGID, lead)
	}
	t.kv(in, "creds", "%s", creds(p.Creds))
	m := p.Memory
	mem := fmt.Sprintf("%s in %d mappings: %s stored, %s from files, %s zero", size(m.Size), m.Mappings,
		size(m.Stored), size(m.FromFile), size(m.Zero))
	if m.Outside > 0 {
		mem += fmt.Sprintf("; %s stored outside every mapping", size(m.Outside))
	}
	t.kv(in, "memory", "%s", mem)
	t.kv(in, "umask", "%s", p.Umask)

	t.section(in, "threads", len(p.Threads), func(tw io.Writer) {
		fmt.Fprintln(tw, "TID\tCOMM\tSTATE\tSCHED")
		for _, th := range p.Threads {
			state := "running"
			if th.Syscall >= 0 {
				state = "in " + th.SyscallName
				if th.SyscallName == "" {
					state = fmt.Sprintf("in syscall %d", th.Syscall)
				}
			}
			sched := fmt.Sprintf("%s, nice %d", th.Policy, th.Nice)
			if th.Priority != 0 {
				sched = fmt.Sprintf("%s, priority %d", th.Policy, th.Priority)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", th.TID, q(th.Comm), state, sched)
		}
	})
	t.section(in, "mappings", len(p.Mappings), func(tw io.Writer) {
		fmt.Fprintln(tw, "ADDRESS\tPERMS\tKIND\tSIZE\tSTORED\tFILE\tZERO\tNAME")
		for _, m := range p.Mappings {
			fmt.Fprintf(tw, "%x-%x\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Start, m.End, m.Perms, clean(m.Kind, 16),
				size(m.Size), dash(m.Stored), dash(m.FromFile), dash(m.Zero), clean(m.Name, maxPath))
		}
	})
	t.section(in, "files", len(p.Files), func(tw io.Writer) {
		fmt.Fprintln(tw, "FD\tKIND\tFLAGS\tPOS\tPATH")
		for _, f := range p.Files {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\n", f.FD, clean(f.Kind, 16), f.Flags, f.Pos, fileText(f))
		}
	})
	if tm := p.Terminal; tm != nil {
		mode := "raw"
		if tm.Canonical {
			mode = "canonical"
		}
		if tm.Echo {
			mode += ", echo"
		} else {
			mode += ", no echo"
		}
		t.kv(in, "terminal", "on fd %d, %dx%d, %s: the restorer's terminal gets these modes", tm.FD, tm.Cols, tm.Rows, mode)
	}
	t.section(in, "timers", len(p.Timers), func(tw io.Writer) {
		fmt.Fprintln(tw, "ID\tCLOCK\tNOTIFY\tNEXT\tINTERVAL")
		for _, tm := range p.Timers {
			notify := tm.Notify
			if tm.Notify == "signal" || tm.Notify == "thread_id" {
				notify = tm.Signal
				if tm.Thread != 0 {
					notify += fmt.Sprintf(" to thread %d", tm.Thread)
				}
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", tm.ID, tm.Clock, notify, nsec(tm.ValueNs), nsec(tm.IntervalNs))
		}
	})
	for _, it := range p.Itimers {
		t.kv(in, "itimer", "%s: next in %s, every %s", it.Which, nsec(it.ValueUs*1000), nsec(it.IntervalUs*1000))
	}
}

// ipc lists the tree's System V objects, as ipcs(1) does.
func (t *text) ipc(ipc *IPC) {
	ns := "shared with the system"
	if ipc.OwnNS {
		ns = "its own"
	}
	fmt.Fprintf(t.w, "\nSystem V IPC (IPC namespace: %s)\n", ns)
	for _, k := range []struct {
		title, size string
		objs        []IPCObj
	}{{"shared memory segments", "BYTES", ipc.Shm}, {"semaphore sets", "NSEMS", ipc.Sem}, {"message queues", "MESSAGES", ipc.Msg}} {
		t.section("  ", k.title, len(k.objs), func(tw io.Writer) {
			fmt.Fprintf(tw, "ID\tKEY\tOWNER\tMODE\t%s\t\n", k.size)
			for _, o := range k.objs {
				extra := ""
				if o.Removed {
					extra = "marked for removal"
				} else if o.Bytes > 0 {
					extra = size(o.Bytes)
				}
				fmt.Fprintf(tw, "%d\t%#08x\t%d:%d\t%s\t%d\t%s\n", o.ID, o.Key, o.UID, o.GID, o.Mode, o.Size, extra)
			}
		})
	}
}

// section writes a titled table, when it has rows.
func (t *text) section(indent, title string, n int, rows func(io.Writer)) {
	if n == 0 {
		return
	}
	fmt.Fprintf(t.w, "%s%s (%d)\n", indent, title, n)
	tw := tabwriter.NewWriter(t.w, 0, 8, 2, ' ', 0)
	rows(&prefixTab{tw, indent + "  "})
	tw.Flush()
}

func dash(n int64) string {
	if n == 0 {
		return "-"
	}
	return size(n)
}

func nsec(ns int64) string {
	if ns == 0 {
		return "-"
	}
	d := time.Duration(ns)
	if d > time.Second || d < -time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func creds(c Creds) string {
	ids := func(what string, v [4]int) string {
		s := fmt.Sprintf("%s %d", what, v[0])
		if v[1] != v[0] || v[2] != v[0] || v[3] != v[0] {
			s += fmt.Sprintf(" (effective %d, saved %d, fs %d)", v[1], v[2], v[3])
		}
		return s
	}
	s := ids("uid", c.UID) + ", " + ids("gid", c.GID)
	if len(c.Groups) > 0 {
		g := make([]string, 0, len(c.Groups))
		for i, id := range c.Groups {
			if i == 32 {
				g = append(g, fmt.Sprintf("and %d more", len(c.Groups)-i))
				break
			}
			g = append(g, strconv.Itoa(id))
		}
		s += ", groups " + strings.Join(g, " ")
	}
	if c.NoNewPrivs {
		s += ", no_new_privs"
	}
	return s
}

func fileText(f OpenFD) string {
	var s string
	switch f.Kind {
	case "stdio":
		return "the restorer's own"
	case format.FileTTY:
		s = clean(f.Path, maxPath) + " (becomes the restorer's terminal)"
	case format.FileEventfd:
		s = fmt.Sprintf("eventfd, count %d", f.Count)
	case format.FileEpoll:
		s = fmt.Sprintf("epoll, %d watched", f.Watched)
	case format.FilePipe, format.FileFIFO:
		s = fmt.Sprintf("%s, %s unread", clean(f.Path, maxPath), size(int64(f.Unread)))
	case format.FileUnix:
		s = fmt.Sprintf("unix socket, %s, %s unread", clean(f.Socket, maxPath), size(int64(f.Unread)))
	case format.FileUDP:
		s = fmt.Sprintf("UDP socket, %s, %s unread", clean(f.Socket, maxPath), size(int64(f.Unread)))
	case format.FilePing, format.FileNetlink:
		s = fmt.Sprintf("%s socket, %s", f.Kind, clean(f.Socket, maxPath))
	case format.FilePTYMaster:
		s = fmt.Sprintf("master of /dev/pts/%d, %s unread, %s typed", f.PTY, size(int64(f.Unread)), size(int64(f.Typed)))
	case format.FilePidfd:
		s = fmt.Sprintf("pidfd of process %d", f.Pidfd)
		if f.Pidfd < 0 {
			s = "pidfd of a process that ended and was reaped"
		}
	default:
		s = clean(f.Path, maxPath)
	}
	if f.Deleted {
		s += " (deleted)"
	}
	if f.Carried {
		s += fmt.Sprintf(" [carried: %s]", size(f.CarriedBytes))
	}
	if f.Dup != 0 {
		s += fmt.Sprintf(" [shared with fd %d]", f.Dup)
	}
	return s
}

// commandLine joins argv as a shell would read it back, escaped.
func commandLine(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		a = clean(a, maxCmd)
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\|&;<>()*?[]{}~#!") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		b.WriteString(a)
		if b.Len() > maxCmd {
			b.WriteString(" ...")
			break
		}
	}
	return b.String()
}

func (t *text) needs(img *Image) {
	n := img.Needs
	fmt.Fprintf(t.w, "\nrestore needs\n")
	const in = "  "
	t.kv(in, "machine", "%s", n.Arch)
	kernel := "Linux of the same family as " + q(n.Kernel) + " (another build works through vDSO jumps)"
	if n.TimerIDs {
		kernel += ", with PR_TIMER_CREATE_RESTORE_IDS for the POSIX timers"
	}
	t.kv(in, "kernel", "%s", kernel)
	if len(n.CPU) > 0 {
		t.kv(in, "cpu", "XSAVE %s (xcr0 %#x)", strings.Join(n.CPU, ", "), n.XCR0)
	}
	if len(img.Processes) > 0 {
		if n.UID == 0 {
			t.kv(in, "user", "root")
		} else {
			t.kv(in, "user", "root, or uid %d", n.UID)
		}
		t.kv(in, "pid", "%d free, for --pid=keep", n.PID)
	}
	if n.Terminal {
		t.kv(in, "terminal", "yes: the process had its terminal open beyond fds 0-2")
	}
	if img.IPC != nil {
		t.kv(in, "ipc", "root, to make the System V objects with their ids (in a new IPC namespace where they are in use)")
	}
	t.section(in, "files", len(n.Files), func(tw io.Writer) {
		fmt.Fprintln(tw, "PATH\tKIND\tMUST BE")
		for _, f := range n.Files {
			what := "there"
			switch {
			case f.Created:
				what = "there or missing: carried in the image"
			case f.Unchanged:
				what = fmt.Sprintf("%s, modified %s", size(f.Size), f.Mtime.Local().Format("2006-01-02 15:04:05.000000000"))
			}
			if f.Locked {
				what += "; not locked by another process (the process held locks on it)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", clean(f.Path, maxPath), clean(f.Kind, 16), what)
		}
	})
	for _, p := range img.Problems {
		t.kv(in, "refused", "%s", p)
	}
}

// prefixTab writes lines to a tabwriter with a prefix before each.
type prefixTab struct {
	w      io.Writer
	prefix string
}

func (p *prefixTab) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := strings.IndexByte(string(b), '\n')
		line := b
		if i >= 0 {
			line = b[:i+1]
		}
		if _, err := io.WriteString(p.w, p.prefix); err != nil {
			return 0, err
		}
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
		b = b[len(line):]
	}
	return n, nil
}
