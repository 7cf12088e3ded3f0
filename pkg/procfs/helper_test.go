package procfs

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary re-executed with helperEnv set runs helperMain instead
// of the tests: a victim whose state the tests know.
const helperEnv = "PROCFS_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := helperMain(mode); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	helperComm   = "a) (b"
	helperPages  = 64
	helperNOFILE = 777
)

// helperInfo is what the helper reports on stdout once ready.
type helperInfo struct {
	Anon       uint64 // helperPages pages: 0-9 written, 20-29 read
	FileMap    uint64 // shared mapping of a deleted file
	FileMapLen uint64
	FDs        map[string]int // name -> fd
	Maps       uint64         // first of the "many" mappings
	ManyCount  int
	Big        uint64 // bench mapping
	HugeZero   uint64 // 2 MiB read-faulted with MADV_HUGEPAGE, or 0
	BigLen     uint64
}

func helperMain(mode string) error {
	dir := os.Getenv("PROCFS_TEST_DIR")
	info := helperInfo{FDs: map[string]int{}}
	if err := os.WriteFile("/proc/self/comm", []byte(helperComm), 0); err != nil {
		return err
	}
	lim := unix.Rlimit{Cur: helperNOFILE, Max: 4096}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	ps := int(pageSize)
	// The mapping sits between two PROT_NONE guards, so that the kernel
	// never merges it with a neighbour of the Go runtime's.
	area, err := unix.Mmap(-1, 0, (helperPages+2)*ps, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	anon := area[ps : ps+helperPages*ps]
	if err := unix.Mprotect(anon, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return err
	}
	if err := unix.Madvise(anon, unix.MADV_NOHUGEPAGE); err != nil {
		return err
	}
	for i := 0; i < 10; i++ {
		anon[i*ps] = 1
	}
	for i := 20; i < 30; i++ {
		_ = readByte(anon[i*ps:])
	}
	info.Anon = addrOf(anon)

	const huge = 2 << 20
	hm, err := unix.Mmap(-1, 0, 2*huge, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return err
	}
	off := (huge - addrOf(hm)%huge) % huge
	if h := hm[off : off+huge]; unix.Madvise(h, unix.MADV_HUGEPAGE) == nil {
		_ = readByte(h)
		info.HugeZero = addrOf(h)
	}

	// Files.
	open := func(name string, fd int, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		info.FDs[name] = fd
		return nil
	}
	fa, err := unix.Open(filepath.Join(dir, "append"), unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT, 0o644)
	if err := open("append", fa, err); err != nil {
		return err
	}
	if _, err := unix.Write(fa, make([]byte, 100)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "seek"), make([]byte, 5000), 0o644); err != nil {
		return err
	}
	fs, err := unix.Open(filepath.Join(dir, "seek"), unix.O_RDONLY, 0)
	if err := open("seek", fs, err); err != nil {
		return err
	}
	if _, err := unix.Seek(fs, 1234, 0); err != nil {
		return err
	}
	fdel, err := unix.Open(filepath.Join(dir, "deleted"), unix.O_RDWR|unix.O_CREAT, 0o600)
	if err := open("deleted", fdel, err); err != nil {
		return err
	}
	if err := unix.Ftruncate(fdel, 3*int64(ps)); err != nil {
		return err
	}
	fm, err := unix.Mmap(fdel, 0, 3*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	fm[0] = 7
	info.FileMap, info.FileMapLen = addrOf(fm), uint64(3*ps)
	if err := os.Remove(filepath.Join(dir, "deleted")); err != nil {
		return err
	}
	efd, err := unix.Eventfd(5, unix.EFD_CLOEXEC)
	if err := open("eventfd", efd, err); err != nil {
		return err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], 0); err != nil {
		return err
	}
	info.FDs["pipe_r"], info.FDs["pipe_w"] = p[0], p[1]
	mfd, err := unix.MemfdCreate("procfs-test", 0)
	if err := open("memfd", mfd, err); err != nil {
		return err
	}
	dn, err := unix.Open("/dev/null", unix.O_RDWR, 0)
	if err := open("devnull", dn, err); err != nil {
		return err
	}
	dd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err := open("dir", dd, err); err != nil {
		return err
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		return err
	}
	ff, err := unix.Open(filepath.Join(dir, "fifo"), unix.O_RDWR, 0)
	if err := open("fifo", ff, err); err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(0)
	if err := open("epoll", ep, err); err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		return err
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	info.FDs["socket"] = sp[0]

	if mode == "bench" {
		// Many mappings with alternating protections, so none merge.
		const many = 2000
		m, err := unix.Mmap(-1, 0, many*ps, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		for i := 0; i < many; i += 2 {
			if err := unix.Mprotect(m[i*ps:(i+1)*ps], unix.PROT_READ|unix.PROT_WRITE); err != nil {
				return err
			}
		}
		info.Maps, info.ManyCount = addrOf(m), many
		// 256 MiB: every other page written, every fourth read.
		const big = 256 << 20
		b, err := unix.Mmap(-1, 0, big, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		unix.Madvise(b, unix.MADV_NOHUGEPAGE)
		for i := 0; i < big/ps; i += 2 {
			b[i*ps] = 1
		}
		for i := 1; i < big/ps; i += 4 {
			_ = readByte(b[i*ps:])
		}
		info.Big, info.BigLen = addrOf(b), big
	}

	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	// Wait for the test to close stdin (or kill us).
	var buf [1]byte
	os.Stdin.Read(buf[:])
	return nil
}

// startHelper runs the helper and returns its PID and report. The helper
// is killed by PID when the test ends.
func startHelper(t testing.TB, mode string) (int, helperInfo) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "PROCFS_TEST_DIR="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill() // by PID
		cmd.Wait()
	})
	var info helperInfo
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&info); err != nil {
		t.Fatalf("helper: %v", err)
	}
	return cmd.Process.Pid, info
}

// startSleep starts sleep(1) with a distinctive argument; it is killed by
// PID when the test ends.
func startSleep(t testing.TB) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "1001")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	// Start returns once the child is forked, maybe before it has
	// exec'd: wait until it runs sleep.
	for i := 0; i < 500; i++ {
		if args, err := Cmdline(cmd.Process.Pid); err == nil && len(args) > 0 && args[0] == "sleep" {
			return cmd
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("sleep (pid %d) did not start", cmd.Process.Pid)
	return nil
}

// stopped stops process pid with SIGSTOP until the test ends, so its
// memory holds still.
func stopped(t testing.TB, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Wait until it is really stopped.
	for i := 0; i < 1000; i++ {
		st, err := ReadStat(pid)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == 'T' {
			break
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 1e6}, nil)
	}
	t.Cleanup(func() { unix.Kill(pid, unix.SIGCONT) })
}
