package procfs

import (
	"bytes"
)

// Stat holds the fields of /proc/PID/stat a checkpointer uses.
type Stat struct {
	PID                                int
	Comm                               string
	State                              byte
	PPID, PGRP, Session, TTY           int
	Flags                              uint64
	Nice, NumThreads                   int
	StartTime                          uint64 // clock ticks after boot
	StartCode, EndCode, StartStack     uint64
	StartData, EndData, StartBrk       uint64
	ArgStart, ArgEnd, EnvStart, EnvEnd uint64
	ExitSignal                         int
	Policy, RTPriority                 int
	// ExitCode is the exit status as wait(2) reports it (field 52); 0
	// where the kernel does not show it (before Linux 3.5, or to a
	// reader without ptrace rights over the process).
	ExitCode int
}

// ReadStat parses /proc/PID/stat.
func ReadStat(pid int) (Stat, error) { return readStat(pidPath(pid, "stat")) }

// ReadTaskStat parses /proc/PID/task/TID/stat.
func ReadTaskStat(pid, tid int) (Stat, error) { return readStat(taskPath(pid, tid, "stat")) }

func readStat(path string) (Stat, error) {
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return Stat{}, err
	}
	st, ok := parseStat(b)
	if !ok {
		return Stat{}, parseError(path, b)
	}
	return st, nil
}

// parseStat parses a stat line. The comm field is between the first '('
// and the last ')': it may itself hold spaces and parentheses.
func parseStat(b []byte) (Stat, bool) {
	var st Stat
	open := bytes.IndexByte(b, '(')
	close := bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return st, false
	}
	pid, ok := parseInt(trimSpace(b[:open]))
	if !ok {
		return st, false
	}
	st.PID = int(pid)
	st.Comm = string(b[open+1 : close])
	rest := b[close+1:]
	// Fields from 3 (state) on, numbered as in proc(5).
	var fields [53][]byte
	n := 3
	for n < len(fields) {
		var f []byte
		f, rest = field(rest)
		if len(f) == 0 {
			break
		}
		fields[n] = f
		n++
	}
	if n < 42 { // up to policy at least
		return st, false
	}
	if len(fields[3]) != 1 {
		return st, false
	}
	st.State = fields[3][0]
	ints := []struct {
		p *int
		i int
	}{
		{&st.PPID, 4}, {&st.PGRP, 5}, {&st.Session, 6}, {&st.TTY, 7},
		{&st.Nice, 19}, {&st.NumThreads, 20}, {&st.ExitSignal, 38},
		{&st.RTPriority, 40}, {&st.Policy, 41},
	}
	for _, x := range ints {
		v, ok := parseInt(fields[x.i])
		if !ok {
			return st, false
		}
		*x.p = int(v)
	}
	uints := []struct {
		p *uint64
		i int
	}{
		{&st.Flags, 9}, {&st.StartTime, 22}, {&st.StartCode, 26},
		{&st.EndCode, 27}, {&st.StartStack, 28}, {&st.StartData, 45},
		{&st.EndData, 46}, {&st.StartBrk, 47}, {&st.ArgStart, 48},
		{&st.ArgEnd, 49}, {&st.EnvStart, 50}, {&st.EnvEnd, 51},
	}
	for _, x := range uints {
		if x.i >= n {
			break // old kernels: no start_data and later
		}
		v, ok := parseUint(fields[x.i], 10)
		if !ok {
			return st, false
		}
		*x.p = v
	}
	if n > 52 {
		v, ok := parseInt(trimSpace(fields[52]))
		if !ok {
			return st, false
		}
		st.ExitCode = int(v)
	}
	return st, true
}

// Status holds the fields of /proc/PID/status a checkpointer uses.
type Status struct {
	Name                           string
	Umask                          uint32
	State                          string // as printed: "S (sleeping)"
	Tgid, Pid, PPid                int
	Uid, Gid                       [4]int // real, effective, saved, fs
	Groups                         []int
	NoNewPrivs                     bool
	Seccomp                        int
	CapInh, CapPrm, CapEff, CapBnd uint64
	CapAmb                         uint64
	SigQ                           string // "queued/limit"
	SigPnd, ShdPnd, SigBlk         uint64
	SigIgn, SigCgt                 uint64
	Threads                        int
	NSpid                          []int // PID in each PID namespace, outermost first
	NSpgid, NSsid                  []int // process group and session, likewise (0 where not seen)
	CoreDumping                    bool
	RssAnon                        uint64 // bytes of resident anonymous memory
}

// ReadStatus parses /proc/PID/status.
func ReadStatus(pid int) (Status, error) { return readStatus(pidPath(pid, "status")) }

// ReadTaskStatus parses /proc/PID/task/TID/status.
func ReadTaskStatus(pid, tid int) (Status, error) {
	return readStatus(taskPath(pid, tid, "status"))
}

func readStatus(path string) (Status, error) {
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return Status{}, err
	}
	var st Status
	if line, ok := parseStatus(&st, b); !ok {
		return Status{}, parseError(path, line)
	}
	return st, nil
}

func parseStatus(st *Status, b []byte) ([]byte, bool) {
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		i := bytes.IndexByte(line, ':')
		if i < 0 {
			continue
		}
		key, val := line[:i], line[i+1:]
		// Name may hold any byte but '\n'; keep it exactly, minus the tab.
		if string(key) == "Name" {
			if len(val) > 0 && val[0] == '\t' {
				val = val[1:]
			}
			st.Name = unescapeName(val)
			continue
		}
		val = trimSpace(val)
		ok := true
		switch string(key) {
		case "Umask":
			var v uint64
			v, ok = parseUint(val, 8)
			st.Umask = uint32(v)
		case "State":
			st.State = string(val)
		case "Tgid":
			ok = parseIntTo(&st.Tgid, val)
		case "Pid":
			ok = parseIntTo(&st.Pid, val)
		case "PPid":
			ok = parseIntTo(&st.PPid, val)
		case "Uid":
			ok = parseInts4(&st.Uid, val)
		case "Gid":
			ok = parseInts4(&st.Gid, val)
		case "Groups":
			st.Groups, ok = parseIntList(val)
		case "NSpid":
			st.NSpid, ok = parseIntList(val)
		case "NSpgid":
			st.NSpgid, ok = parseIntList(val)
		case "NSsid":
			st.NSsid, ok = parseIntList(val)
		case "NoNewPrivs":
			st.NoNewPrivs = string(val) == "1"
		case "Seccomp":
			ok = parseIntTo(&st.Seccomp, val)
		case "CapInh":
			st.CapInh, ok = parseUint(val, 16)
		case "CapPrm":
			st.CapPrm, ok = parseUint(val, 16)
		case "CapEff":
			st.CapEff, ok = parseUint(val, 16)
		case "CapBnd":
			st.CapBnd, ok = parseUint(val, 16)
		case "CapAmb":
			st.CapAmb, ok = parseUint(val, 16)
		case "SigQ":
			st.SigQ = string(val)
		case "SigPnd":
			st.SigPnd, ok = parseUint(val, 16)
		case "ShdPnd":
			st.ShdPnd, ok = parseUint(val, 16)
		case "SigBlk":
			st.SigBlk, ok = parseUint(val, 16)
		case "SigIgn":
			st.SigIgn, ok = parseUint(val, 16)
		case "SigCgt":
			st.SigCgt, ok = parseUint(val, 16)
		case "Threads":
			ok = parseIntTo(&st.Threads, val)
		case "CoreDumping":
			st.CoreDumping = string(val) == "1"
		case "RssAnon":
			kb, _ := bytes.CutSuffix(val, []byte(" kB"))
			st.RssAnon, ok = parseUint(trimSpace(kb), 10)
			st.RssAnon <<= 10
		}
		if !ok {
			return line, false
		}
	}
	return nil, true
}

// unescapeName undoes the escaping of the Name line of status, which
// prints '\\' as "\\\\" and '\n' as "\\n".
func unescapeName(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			switch b[i+1] {
			case '\\':
				out = append(out, '\\')
				i++
				continue
			case 'n':
				out = append(out, '\n')
				i++
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

func parseIntTo(p *int, b []byte) bool {
	v, ok := parseInt(b)
	*p = int(v)
	return ok
}

func parseInts4(p *[4]int, b []byte) bool {
	for i := range p {
		var f []byte
		f, b = field(b)
		if !parseIntTo(&p[i], f) {
			return false
		}
	}
	return true
}

// parseIntList parses space separated integers; an empty list is nil.
func parseIntList(b []byte) ([]int, bool) {
	var out []int
	for {
		var f []byte
		f, b = field(b)
		if len(f) == 0 {
			return out, true
		}
		v, ok := parseInt(f)
		if !ok {
			return nil, false
		}
		out = append(out, int(v))
	}
}
