package procfs

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name string
		line string
		comm string
	}{
		{"plain", "42 (cat) S 1 42 42 0 -1 4194304 1 2 3 4 5 6 7 8 20 -5 3 0 999 1 2 3 100 200 300 9 9 9 9 9 9 9 9 9 17 1 5 2 9 9 9 400 500 600 700 800 900 1000 768\n", "cat"},
		{"parens", "42 (a) (b) S 1 42 42 0 -1 4194304 1 2 3 4 5 6 7 8 20 -5 3 0 999 1 2 3 100 200 300 9 9 9 9 9 9 9 9 9 17 1 5 2 9 9 9 400 500 600 700 800 900 1000 768\n", "a) (b"},
		{"spaces", "42 ( x y ) S 1 42 42 0 -1 4194304 1 2 3 4 5 6 7 8 20 -5 3 0 999 1 2 3 100 200 300 9 9 9 9 9 9 9 9 9 17 1 5 2 9 9 9 400 500 600 700 800 900 1000 768\n", " x y "},
		{"empty", "42 () S 1 42 42 0 -1 4194304 1 2 3 4 5 6 7 8 20 -5 3 0 999 1 2 3 100 200 300 9 9 9 9 9 9 9 9 9 17 1 5 2 9 9 9 400 500 600 700 800 900 1000 768\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, ok := parseStat([]byte(tt.line))
			if !ok {
				t.Fatalf("parseStat(%q) failed", tt.line)
			}
			want := Stat{PID: 42, Comm: tt.comm, State: 'S', PPID: 1, PGRP: 42, Session: 42, TTY: 0,
				Flags: 4194304, Nice: -5, NumThreads: 3, StartTime: 999,
				StartCode: 100, EndCode: 200, StartStack: 300, ExitSignal: 17, RTPriority: 5, Policy: 2,
				StartData: 400, EndData: 500, StartBrk: 600, ArgStart: 700, ArgEnd: 800, EnvStart: 900, EnvEnd: 1000, ExitCode: 768}
			if st != want {
				t.Errorf("parseStat(%q) = %+v; want %+v", tt.line, st, want)
			}
		})
	}
	for _, bad := range []string{"", "42 cat S", "42 (cat) S 1 2", "x (cat) S 1 42 42 0 -1 4194304 1 2 3 4 5 6 7 8 20 -5 3 0 999 1 2 3 100 200 300 9 9 9 9 9 9 9 9 9 17 1 0 2 9 9 9"} {
		if _, ok := parseStat([]byte(bad)); ok {
			t.Errorf("parseStat(%q) succeeded; want failure", bad)
		}
	}
}

func TestParseMapsLine(t *testing.T) {
	tests := []struct {
		line string
		want Mapping
	}{
		{"7f0000000000-7f0000002000 rw-p 00000000 00:00 0 ",
			Mapping{Start: 0x7f0000000000, End: 0x7f0000002000, Perms: "rw-p", Read: true, Write: true}},
		{"55d0c0a00000-55d0c0a21000 rw-p 00000000 00:00 0                          [heap]",
			Mapping{Start: 0x55d0c0a00000, End: 0x55d0c0a21000, Perms: "rw-p", Read: true, Write: true, Path: "[heap]"}},
		{"7f1000000000-7f1000001000 r-xs 0000a000 fd:01 1234567                    /a b/c (deleted)",
			Mapping{Start: 0x7f1000000000, End: 0x7f1000001000, Perms: "r-xs", Read: true, Exec: true, Shared: true,
				Offset: 0xa000, Dev: unix.Mkdev(0xfd, 1), Inode: 1234567, Path: "/a b/c", Deleted: true}},
		{"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
			Mapping{Start: 0xffffffffff600000, End: 0xffffffffff601000, Perms: "--xp", Exec: true, Path: "[vsyscall]"}},
		{"7f2000000000-7f2000001000 rw-s 00000000 00:01 99 /dev/zero (deleted)",
			Mapping{Start: 0x7f2000000000, End: 0x7f2000001000, Perms: "rw-s", Read: true, Write: true, Shared: true,
				Dev: unix.Mkdev(0, 1), Inode: 99, Path: "/dev/zero", Deleted: true}},
	}
	for _, tt := range tests {
		var m Mapping
		if !parseMapsLine(&m, []byte(tt.line), map[string]string{}) {
			t.Errorf("parseMapsLine(%q) failed", tt.line)
			continue
		}
		if !reflect.DeepEqual(m, tt.want) {
			t.Errorf("parseMapsLine(%q) = %+v; want %+v", tt.line, m, tt.want)
		}
	}
	for _, bad := range []string{"xyz", "1000-2000 rw-p", "1000-2000 rw 0 00:00 0", "1000-2000 rw-p 0 0000 0"} {
		var m Mapping
		if parseMapsLine(&m, []byte(bad), map[string]string{}) {
			t.Errorf("parseMapsLine(%q) succeeded; want failure", bad)
		}
	}
}

func TestParseSmaps(t *testing.T) {
	in := `7f0000000000-7f0000200000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                 512 kB
Anonymous:           508 kB
AnonHugePages:         0 kB
VmFlags: rd wr mr mw me gd ac 
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
Size:                132 kB
Rss:                  12 kB
AnonHugePages:      2048 kB
VmFlags: rd wr mr mw me gd ac dd
`
	ms, err := parseMaps("smaps", []byte(in), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("parseMaps(smaps) gave %d mappings; want 2", len(ms))
	}
	if ms[0].Rss != 512<<10 || ms[0].Anonymous != 508<<10 || ms[1].AnonHugePages != 2048<<10 || ms[1].Path != "[stack]" {
		t.Errorf("parseMaps(smaps) = %+v", ms)
	}
	if !ms[0].Flags["gd"] || ms[0].Flags["dd"] || !ms[1].Flags["dd"] || len(ms[0].Flags) != 7 {
		t.Errorf("parseMaps(smaps) flags = %v, %v", ms[0].Flags, ms[1].Flags)
	}
}

func TestParseFDInfo(t *testing.T) {
	in := "pos:\t1234\nflags:\t02102001\nmnt_id:\t17\nino:\t1038\neventfd-count:                5\n" +
		"tfd:        5 events:       19 data:                5  pos:0 ino:40e sdev:f\n" +
		"inotify wd:1 ino:2 sdev:3 mask:fff ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0000\n" +
		"lock:\t1: POSIX  ADVISORY  WRITE 42 00:01:2 0 EOF\n"
	var fd FD
	if !parseFDInfo(&fd, []byte(in)) {
		t.Fatal("parseFDInfo failed")
	}
	if fd.Pos != 1234 || fd.Flags != 0o2102001 || fd.MntID != 17 {
		t.Errorf("parseFDInfo: pos %d flags %o mnt_id %d; want 1234 2102001 17", fd.Pos, fd.Flags, fd.MntID)
	}
	wantInfo := map[string]string{"ino": "1038", "eventfd-count": "5"}
	if !reflect.DeepEqual(fd.Info, wantInfo) {
		t.Errorf("parseFDInfo: Info = %v; want %v", fd.Info, wantInfo)
	}
	if len(fd.Extra) != 3 || !strings.HasPrefix(fd.Extra[0], "tfd:") || !strings.HasPrefix(fd.Extra[1], "inotify") || !strings.HasPrefix(fd.Extra[2], "lock:") {
		t.Errorf("parseFDInfo: Extra = %q", fd.Extra)
	}
}

func TestScanArgsMatch(t *testing.T) {
	a := Masks(PageIsPresent|PageIsSwapped, PageIsPFNZero)
	if a.Inverted != PageIsPFNZero || a.Mask != PageIsPFNZero || a.AnyOf != PageIsPresent|PageIsSwapped {
		t.Errorf("Masks(present|swapped, pfnzero) = %+v", a)
	}
	tests := []struct {
		c    uint64
		want bool
	}{
		{0, false},
		{PageIsPresent, true},
		{PageIsPresent | PageIsFile, true},
		{PageIsPresent | PageIsPFNZero, false},
		{PageIsSwapped, true},
		{PageIsSwapped | PageIsWritten, true},
		{PageIsWritten, false},
		{PageIsFile, false},
	}
	for _, tt := range tests {
		if got := a.Match(tt.c); got != tt.want {
			t.Errorf("Masks(present|swapped, pfnzero).Match(%#x) = %v; want %v", tt.c, got, tt.want)
		}
	}
}

func TestHelperStat(t *testing.T) {
	pid, _ := startHelper(t, "basic")
	st, err := ReadStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != pid || st.Comm != helperComm || st.PPID != os.Getpid() || st.NumThreads < 2 {
		t.Errorf("ReadStat(%d) = pid %d comm %q ppid %d threads %d; want %d %q %d >=2",
			pid, st.PID, st.Comm, st.PPID, st.NumThreads, pid, helperComm, os.Getpid())
	}
	if st.StartCode == 0 || st.EndCode <= st.StartCode || st.StartStack == 0 || st.ArgEnd <= st.ArgStart || st.EnvEnd <= st.EnvStart || st.StartBrk == 0 {
		t.Errorf("ReadStat(%d) addresses = %+v", pid, st)
	}
	if st.ExitSignal != int(unix.SIGCHLD) {
		t.Errorf("ReadStat(%d).ExitSignal = %d; want %d", pid, st.ExitSignal, unix.SIGCHLD)
	}
	if c, err := Comm(pid, pid); err != nil || c != helperComm {
		t.Errorf("Comm(%d, %d) = %q, %v; want %q", pid, pid, c, err, helperComm)
	}
	tids, err := Tasks(pid)
	if err != nil || len(tids) != st.NumThreads || tids[0] != pid || !slices.IsSorted(tids) {
		t.Errorf("Tasks(%d) = %v, %v; want %d sorted tids starting with %d", pid, tids, err, st.NumThreads, pid)
	}
	for _, tid := range tids {
		ts, err := ReadTaskStat(pid, tid)
		if err != nil || ts.PID != tid {
			t.Errorf("ReadTaskStat(%d, %d) = %+v, %v", pid, tid, ts, err)
		}
		ss, err := ReadTaskStatus(pid, tid)
		if err != nil || ss.Pid != tid || ss.Tgid != pid {
			t.Errorf("ReadTaskStatus(%d, %d) = %+v, %v", pid, tid, ss, err)
		}
	}

	s, err := ReadStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != helperComm || s.Tgid != pid || s.Pid != pid || s.PPid != os.Getpid() ||
		s.Uid != [4]int{0, 0, 0, 0} || s.Threads != st.NumThreads || !slices.Equal(s.NSpid, []int{pid}) ||
		s.CapEff == 0 || s.CapBnd == 0 || s.State == "" || !strings.Contains(s.SigQ, "/") {
		t.Errorf("ReadStatus(%d) = %+v", pid, s)
	}
	if s.SigCgt == 0 { // the Go runtime catches signals
		t.Errorf("ReadStatus(%d).SigCgt = 0", pid)
	}
	if s.RssAnon < 64<<10 || s.RssAnon%1024 != 0 { // a Go program's heap and stacks
		t.Errorf("ReadStatus(%d).RssAnon = %d", pid, s.RssAnon)
	}

	exe, _ := os.Executable()
	if got, err := Exe(pid); err != nil || got != exe {
		t.Errorf("Exe(%d) = %q, %v; want %q", pid, got, err, exe)
	}
	wd, _ := os.Getwd()
	if got, err := Cwd(pid); err != nil || got != wd {
		t.Errorf("Cwd(%d) = %q, %v; want %q", pid, got, err, wd)
	}
	if got, err := Root(pid); err != nil || got != "/" {
		t.Errorf("Root(%d) = %q, %v; want /", pid, got, err)
	}
	if got, err := Cmdline(pid); err != nil || !slices.Equal(got, []string{exe, "-test.run=^$"}) {
		t.Errorf("Cmdline(%d) = %q, %v", pid, got, err)
	}
	if got, err := Personality(pid); err != nil || got != 0 {
		t.Errorf("Personality(%d) = %#x, %v; want 0", pid, got, err)
	}
	auxv, err := Auxv(pid)
	if err != nil || len(auxv) < 4 || len(auxv)%2 != 0 || auxv[len(auxv)-2] != 0 || auxv[len(auxv)-1] != 0 {
		t.Fatalf("Auxv(%d) = %v, %v", pid, auxv, err)
	}
	pagesz := uint64(0)
	for i := 0; i < len(auxv); i += 2 {
		if auxv[i] == 6 { // AT_PAGESZ
			pagesz = auxv[i+1]
		}
	}
	if pagesz != pageSize {
		t.Errorf("Auxv(%d): AT_PAGESZ = %d; want %d", pid, pagesz, pageSize)
	}
}

func TestLimits(t *testing.T) {
	pid, _ := startHelper(t, "basic")
	ls, err := Limits(pid)
	if err != nil {
		t.Fatal(err)
	}
	if ls[unix.RLIMIT_NOFILE] != (Limit{helperNOFILE, 4096}) {
		t.Errorf("Limits(%d)[NOFILE] = %v; want {%d 4096}", pid, ls[unix.RLIMIT_NOFILE], helperNOFILE)
	}
	var own unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_CPU, &own)
	if ls[unix.RLIMIT_CPU] != (Limit{own.Cur, own.Max}) {
		t.Errorf("Limits(%d)[CPU] = %v; want %v", pid, ls[unix.RLIMIT_CPU], own)
	}
	fromProc, err := limitsFromProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	if fromProc != ls {
		t.Errorf("limitsFromProc(%d) = %v; want %v", pid, fromProc, ls)
	}
}

func TestMapsHelper(t *testing.T) {
	pid, info := startHelper(t, "basic")
	for _, read := range []struct {
		name string
		f    func(int) ([]Mapping, error)
	}{{"Maps", Maps}, {"Smaps", Smaps}} {
		ms, err := read.f(pid)
		if err != nil {
			t.Fatal(err)
		}
		find := func(addr uint64) *Mapping {
			for i := range ms {
				if ms[i].Contains(addr) {
					return &ms[i]
				}
			}
			t.Fatalf("%s(%d): no mapping holds %#x", read.name, pid, addr)
			return nil
		}
		for i := 1; i < len(ms); i++ {
			if ms[i].Start < ms[i-1].End {
				t.Errorf("%s(%d): mappings out of order: %+v, %+v", read.name, pid, ms[i-1], ms[i])
			}
		}
		a := find(info.Anon)
		if a.Start != info.Anon || a.Len() != helperPages*pageSize || a.Perms != "rw-p" || a.Path != "" || a.Inode != 0 {
			t.Errorf("%s(%d): anonymous mapping = %+v", read.name, pid, *a)
		}
		f := find(info.FileMap)
		if f.Start != info.FileMap || f.Len() != info.FileMapLen || f.Perms != "rw-s" || !f.Shared ||
			!f.Deleted || !strings.HasSuffix(f.Path, "/deleted") || f.Inode == 0 {
			t.Errorf("%s(%d): file mapping = %+v", read.name, pid, *f)
		}
		var names []string
		for _, m := range ms {
			if strings.HasPrefix(m.Path, "[") {
				names = append(names, m.Path)
			}
		}
		for _, n := range []string{"[stack]", "[vdso]", "[vvar]"} {
			if !slices.Contains(names, n) {
				t.Errorf("%s(%d): no %s in %v", read.name, pid, n, names)
			}
		}
		if read.name == "Smaps" {
			if !a.Flags["nh"] || !a.Flags["rd"] || !a.Flags["wr"] || a.Rss != 10*pageSize { // the zero page is not in Rss
				t.Errorf("Smaps(%d): anonymous mapping flags %v rss %d; want nh rd wr, rss %d", pid, a.Flags, a.Rss, 10*pageSize)
			}
			if !f.Flags["sh"] {
				t.Errorf("Smaps(%d): file mapping flags %v; want sh", pid, f.Flags)
			}
		} else if a.Flags != nil {
			t.Errorf("Maps(%d): Flags = %v; want nil", pid, a.Flags)
		}
	}
}

func TestFDs(t *testing.T) {
	pid, info := startHelper(t, "basic")
	fds, err := FDs(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(fds, func(a, b FD) int { return a.Num - b.Num }) || len(fds) < 3 || fds[0].Num != 0 {
		t.Fatalf("FDs(%d) = %+v: not sorted or no 0", pid, fds)
	}
	byNum := map[int]FD{}
	for _, fd := range fds {
		byNum[fd.Num] = fd
	}
	get := func(name string) FD {
		n, ok := info.FDs[name]
		if !ok {
			t.Fatalf("helper has no fd %q", name)
		}
		fd, ok := byNum[n]
		if !ok {
			t.Fatalf("FDs(%d): no fd %d (%s)", pid, n, name)
		}
		return fd
	}
	fd := get("append")
	if fd.Kind != FileRegular || fd.Pos != 100 || fd.Size != 100 || fd.Flags&unix.O_APPEND == 0 ||
		fd.Flags&unix.O_ACCMODE != unix.O_WRONLY || !strings.HasSuffix(fd.Path, "/append") || fd.Deleted || fd.MntID == 0 || fd.Ino == 0 {
		t.Errorf("FDs(%d) append = %+v", pid, fd)
	}
	fd = get("seek")
	if fd.Kind != FileRegular || fd.Pos != 1234 || fd.Size != 5000 || fd.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("FDs(%d) seek = %+v", pid, fd)
	}
	fd = get("deleted")
	if fd.Kind != FileRegular || !fd.Deleted || !strings.HasSuffix(fd.Path, "/deleted") || !strings.HasSuffix(fd.Target, "/deleted (deleted)") {
		t.Errorf("FDs(%d) deleted = %+v", pid, fd)
	}
	fd = get("eventfd")
	if fd.Kind != AnonInode || fd.Target != "anon_inode:[eventfd]" || fd.Info["eventfd-count"] != "5" || fd.Flags&unix.O_CLOEXEC == 0 {
		t.Errorf("FDs(%d) eventfd = %+v", pid, fd)
	}
	r, w := get("pipe_r"), get("pipe_w")
	if r.Kind != Pipe || w.Kind != Pipe || r.Target != w.Target || r.Ino != w.Ino || !strings.HasPrefix(r.Target, "pipe:[") ||
		r.Flags&unix.O_ACCMODE != unix.O_RDONLY || w.Flags&unix.O_ACCMODE != unix.O_WRONLY {
		t.Errorf("FDs(%d) pipe = %+v, %+v", pid, r, w)
	}
	fd = get("memfd")
	if fd.Kind != Memfd || fd.Path != "/memfd:procfs-test" || !fd.Deleted {
		t.Errorf("FDs(%d) memfd = %+v", pid, fd)
	}
	fd = get("devnull")
	if fd.Kind != FileChar || fd.Path != "/dev/null" || fd.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("FDs(%d) devnull = %+v", pid, fd)
	}
	fd = get("dir")
	if fd.Kind != FileDir || fd.Flags&unix.O_DIRECTORY == 0 {
		t.Errorf("FDs(%d) dir = %+v", pid, fd)
	}
	fd = get("fifo")
	if fd.Kind != FileFIFO || !strings.HasSuffix(fd.Path, "/fifo") {
		t.Errorf("FDs(%d) fifo = %+v", pid, fd)
	}
	fd = get("epoll")
	if fd.Kind != AnonInode || fd.Target != "anon_inode:[eventpoll]" || len(fd.Extra) != 1 || !strings.HasPrefix(fd.Extra[0], "tfd:") {
		t.Errorf("FDs(%d) epoll = %+v", pid, fd)
	}
	fd = get("socket")
	if fd.Kind != Socket || !strings.HasPrefix(fd.Target, "socket:[") || fd.Mode&unix.S_IFMT != unix.S_IFSOCK {
		t.Errorf("FDs(%d) socket = %+v", pid, fd)
	}
}

func TestSleepProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	cmd := startSleep(t)
	pid := cmd.Process.Pid
	if got, err := Timers(pid); err != nil || got != "" {
		t.Errorf("Timers(%d) = %q, %v; want \"\"", pid, got, err)
	}
	if got, err := Cmdline(pid); err != nil || !slices.Equal(got, []string{"sleep", "1001"}) {
		t.Errorf("Cmdline(%d) = %q, %v", pid, got, err)
	}
	kids, err := ChildrenOf(os.Getpid())
	if err != nil || !slices.Contains(kids, pid) {
		t.Errorf("ChildrenOf(self) = %v, %v; want to hold %d", kids, err, pid)
	}
	found, err := FindByName("sleep")
	if err != nil || !slices.Contains(found, pid) {
		t.Errorf("FindByName(sleep) = %v, %v; want to hold %d", found, err, pid)
	}
	exe, _ := os.Executable()
	found, err = FindByName(exe[strings.LastIndexByte(exe, '/')+1:])
	if err != nil || slices.Contains(found, os.Getpid()) {
		t.Errorf("FindByName(own name) = %v, %v; want without self %d", found, err, os.Getpid())
	}
	if _, err := ReadStat(1 << 30); !os.IsNotExist(err) {
		t.Errorf("ReadStat(1<<30) error = %v; want not exist", err)
	}
}

func TestScanHelper(t *testing.T) {
	pid, info := startHelper(t, "basic")
	stopped(t, pid)
	pm, err := OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	ps := pageSize
	lo, hi := info.Anon, info.Anon+helperPages*ps
	tests := []struct {
		name          string
		want, exclude uint64
		regions       []PageRegion
	}{
		{"data", PageIsPresent | PageIsSwapped, PageIsPFNZero,
			[]PageRegion{{lo, lo + 10*ps, PageIsPresent}}},
		{"present", PageIsPresent, 0,
			[]PageRegion{{lo, lo + 10*ps, PageIsPresent}, {lo + 20*ps, lo + 30*ps, PageIsPresent}}},
		{"zero", PageIsPFNZero, 0,
			[]PageRegion{{lo + 20*ps, lo + 30*ps, PageIsPFNZero}}},
		{"all", 0, 0, []PageRegion{{lo, hi, 0}}},
		{"not present", 0, PageIsPresent,
			[]PageRegion{{lo + 10*ps, lo + 20*ps, 0}, {lo + 30*ps, hi, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []struct {
				name string
				scan func(start, end, want, exclude uint64) ([]PageRegion, error)
			}{{"Scan", pm.Scan}, {"ScanSlow", pm.ScanSlow}} {
				got, err := f.scan(lo, hi, tt.want, tt.exclude)
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if !slices.Equal(got, tt.regions) {
					t.Errorf("%s(%#x, %#x, %#x, %#x) = %x; want %x", f.name, lo, hi, tt.want, tt.exclude, got, tt.regions)
				}
			}
		})
	}
	// The file mapping: one page written, shared.
	got, err := pm.Scan(info.FileMap, info.FileMap+info.FileMapLen, PageIsPresent|PageIsFile, 0)
	want := []PageRegion{{info.FileMap, info.FileMap + ps, PageIsPresent | PageIsFile}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Scan(file mapping) = %x, %v; want %x", got, err, want)
	}
}

// TestScanAgrees compares Scan and ScanSlow over the whole address space
// of a stopped helper, for several category sets.
func TestScanAgrees(t *testing.T) {
	pid, _ := startHelper(t, "basic")
	stopped(t, pid)
	ms, err := Maps(pid)
	if err != nil {
		t.Fatal(err)
	}
	top := uint64(0)
	for _, m := range ms {
		if m.Path != "[vsyscall]" {
			top = max(top, m.End)
		}
	}
	pm, err := OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	sets := []struct{ want, exclude uint64 }{
		{PageIsPresent | PageIsSwapped, PageIsPFNZero},
		{PageIsPresent, 0},
		{PageIsPFNZero, 0},
		{PageIsFile, 0},
		{PageIsPresent | PageIsFile, PageIsPFNZero},
		{0, PageIsPresent},
		{0, 0},
	}
	for _, s := range sets {
		fast, err := pm.Scan(0, top, s.want, s.exclude)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := pm.ScanSlow(0, top, s.want, s.exclude)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fast, slow) {
			t.Errorf("Scan(0, %#x, %#x, %#x) = %d regions, ScanSlow = %d; first difference %s", top, s.want, s.exclude, len(fast), len(slow), firstDiff(fast, slow))
		}
		if len(fast) == 0 && s.want != PageIsPFNZero {
			t.Errorf("Scan(0, %#x, %#x, %#x) found nothing", top, s.want, s.exclude)
		}
	}
}

func firstDiff(a, b []PageRegion) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%x vs %x", a[i], b[i])
		}
	}
	return "in length"
}

// TestScanHugeZero checks that a read-faulted THP range (the huge zero
// page) is PFNZero for both Scan and ScanSlow.
func TestScanHugeZero(t *testing.T) {
	pid, info := startHelper(t, "basic")
	if info.HugeZero == 0 {
		t.Skip("no transparent huge pages")
	}
	stopped(t, pid)
	pm, err := OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	lo, hi := info.HugeZero, info.HugeZero+2<<20
	fast, err := pm.ScanWith(nil, lo, hi, ScanArgs{AnyOf: PageIsPresent, Return: PageIsPresent | PageIsPFNZero | PageIsHuge})
	if err != nil {
		t.Fatal(err)
	}
	if len(fast) != 1 || fast[0] != (PageRegion{lo, hi, PageIsPresent | PageIsPFNZero | PageIsHuge}) {
		t.Skipf("ScanWith(huge zero range) = %x: no huge zero page here", fast)
	}
	slow, err := pm.ScanSlow(lo, hi, PageIsPFNZero, 0)
	want := []PageRegion{{lo, hi, PageIsPFNZero}}
	if err != nil || !slices.Equal(slow, want) {
		t.Errorf("ScanSlow(huge zero range) = %x, %v; want %x", slow, err, want)
	}
	data, err := pm.Scan(lo, hi, PageIsPresent|PageIsSwapped, PageIsPFNZero)
	if err != nil || len(data) != 0 {
		t.Errorf("Scan(huge zero range, data) = %x, %v; want none", data, err)
	}
}

// TestScanFallback checks that Scan answers through ScanSlow once the
// ioctl is known to be missing.
func TestScanFallback(t *testing.T) {
	pid, info := startHelper(t, "basic")
	stopped(t, pid)
	pm, err := OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	pm.slow = true
	lo := info.Anon
	got, err := pm.Scan(lo, lo+helperPages*pageSize, PageIsPresent|PageIsSwapped, PageIsPFNZero)
	want := []PageRegion{{lo, lo + 10*pageSize, PageIsPresent}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Scan (slow) = %x, %v; want %x", got, err, want)
	}
}

func TestScanBadArgs(t *testing.T) {
	pm, err := OpenPagemap(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	if _, err := pm.Scan(1, 1<<20, PageIsPresent, 0); err == nil {
		t.Error("Scan(1, ...) succeeded; want unaligned start error")
	}
	if _, err := pm.Scan(0, 1<<20, 1<<20, 0); err == nil {
		t.Error("Scan(.., 1<<20, 0) succeeded; want unknown category error")
	}
}

// TestScanManyRegions scans more regions than one ioctl returns: 256 MiB
// with every other page written. The kernel's walk_end can lag behind
// the regions it returned; no region may come twice.
func TestScanManyRegions(t *testing.T) {
	pid, info := startHelper(t, "bench")
	stopped(t, pid)
	pm, err := OpenPagemap(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pm.Close()
	lo, hi := info.Big, info.Big+info.BigLen
	for _, f := range []struct {
		name string
		scan func(start, end, want, exclude uint64) ([]PageRegion, error)
	}{{"Scan", pm.Scan}, {"ScanSlow", pm.ScanSlow}} {
		rs, err := f.scan(lo, hi, PageIsPresent|PageIsSwapped, PageIsPFNZero)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(info.BigLen / pageSize / 2); len(rs) != want {
			t.Errorf("%s(big) = %d regions; want %d", f.name, len(rs), want)
		}
		for i, r := range rs {
			want := PageRegion{lo + uint64(2*i)*pageSize, lo + uint64(2*i+1)*pageSize, PageIsPresent}
			if r != want {
				t.Errorf("%s(big)[%d] = %x; want %x", f.name, i, r, want)
				break
			}
		}
	}
}

func TestAppendRegion(t *testing.T) {
	tests := []struct {
		name string
		in   []PageRegion
		want []PageRegion
	}{
		{"merge", []PageRegion{{0, 1, 8}, {1, 2, 8}}, []PageRegion{{0, 2, 8}}},
		{"other categories", []PageRegion{{0, 1, 8}, {1, 2, 16}}, []PageRegion{{0, 1, 8}, {1, 2, 16}}},
		{"gap", []PageRegion{{0, 1, 8}, {2, 3, 8}}, []PageRegion{{0, 1, 8}, {2, 3, 8}}},
		{"repeat", []PageRegion{{0, 1, 8}, {2, 3, 8}, {2, 3, 8}}, []PageRegion{{0, 1, 8}, {2, 3, 8}}},
		{"overlap", []PageRegion{{0, 4, 8}, {2, 6, 8}}, []PageRegion{{0, 6, 8}}},
	}
	for _, tt := range tests {
		var got []PageRegion
		for _, r := range tt.in {
			got = appendRegion(got, 0, r)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: appendRegion(%v) = %v; want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestParseLock(t *testing.T) {
	for _, tc := range []struct {
		line string
		want FileLock
		ok   bool
	}{
		{"\t1: FLOCK  ADVISORY  WRITE 13854 fe:00:9977926 0 EOF", FileLock{Class: "FLOCK", Mode: "ADVISORY", Write: true, PID: 13854, Dev: unix.Mkdev(0xfe, 0), Ino: 9977926, End: math.MaxInt64}, true},
		{"2: POSIX  ADVISORY  READ 13854 103:02:77 50 99", FileLock{Class: "POSIX", Mode: "ADVISORY", PID: 13854, Dev: unix.Mkdev(0x103, 2), Ino: 77, Start: 50, End: 99}, true},
		{"3: OFDLCK ADVISORY  WRITE -1 00:2a:5 3 6", FileLock{Class: "OFDLCK", Mode: "ADVISORY", Write: true, PID: -1, Dev: unix.Mkdev(0, 0x2a), Ino: 5, Start: 3, End: 6}, true},
		{"4: -> POSIX  ADVISORY  WRITE 77 fe:00:5 0 EOF", FileLock{Class: "POSIX", Mode: "ADVISORY", Write: true, PID: 77, Dev: unix.Mkdev(0xfe, 0), Ino: 5, End: math.MaxInt64, Blocked: true}, true},
		{"5: LEASE  ACTIVE    READ 9 fe:00:5 0 EOF", FileLock{Class: "LEASE", Mode: "ACTIVE", PID: 9, Dev: unix.Mkdev(0xfe, 0), Ino: 5, End: math.MaxInt64}, true},
		{"6: POSIX  ADVISORY  WRITE 9 <none>:0 0 EOF", FileLock{}, false},
		{"7: POSIX  ADVISORY  WRITE 9 fe:00:5 9 3", FileLock{}, false},
		{"8: POSIX  ADVISORY  BOTH 9 fe:00:5 0 3", FileLock{}, false},
		{"", FileLock{}, false},
	} {
		got, ok := ParseLock(tc.line)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("ParseLock(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
