package tests

// A restore opens, creates and maps files with the credentials of the
// restored process, never more: root restoring an image of an ordinary
// user's process refuses, by name, every file that user could not open.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
)

// userImage dumps the features victim in timer mode run by user u in
// /tmp, and returns the image and what the victim printed.
func userImage(t *testing.T, u *syscall.Credential) (string, []string) {
	t.Helper()
	bin := publicCopy(t, featuresBin(t))
	p := startAs(t, []string{bin, "timer"}, "/tmp", &syscall.SysProcAttr{Credential: u})
	expect(t, p.out, "start 0", 0)
	reports(t, p.out, "timer", 2, 0)
	return dumpKilled(t, p)
}

// rootOnlyFile makes a file only root may read (like /etc/shadow), in a
// folder anyone may search, and returns it as an image names a file it
// had open: the same size, time and inode, so that nothing but its
// permissions stops a restore. Not /etc/shadow itself: a useradd running
// meanwhile (another test's, a person's) changes it, and procs-load then
// rightly refuses it as changed since the dump before asking whether the
// process may open it.
func rootOnlyFile(t *testing.T) format.File {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "secret")
	if err := os.WriteFile(path, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return format.File{Kind: format.FileRegular, Path: path, Dev: st.Dev, Ino: st.Ino,
		Mode: st.Mode, Size: st.Size, Mtime: st.Mtim.Nano()}
}

// addFD adds file f to p, open as fd num with flags.
func addFD(p *imageEdit, f format.File, num, flags int) {
	p.Files = append(p.Files, f)
	p.FDs = append(p.FDs, format.FD{Num: num, File: len(p.Files) - 1, Flags: flags, Open: 1 << 20})
}

func TestRestoreOpensAsTheProcess(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	u := testUser(t)
	img, before := userImage(t, u)
	uid := fmt.Sprintf("uid %d", u.Uid)
	missing := fmt.Sprintf("/etc/procs-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	secret := rootOnlyFile(t)
	carried := secret
	carried.Carried = true
	for _, tc := range []struct {
		name  string
		edit  func(p *imageEdit)
		wants []string
	}{
		{"fd", func(p *imageEdit) {
			addFD(p, secret, 5, unix.O_RDWR)
		}, []string{"fd 5", secret.Path, uid}},
		{"fd-read-only", func(p *imageEdit) {
			addFD(p, secret, 7, unix.O_RDONLY)
		}, []string{"fd 7", secret.Path, uid}},
		{"mapping", func(p *imageEdit) {
			p.Files = append(p.Files, secret)
			m := format.Mapping{Start: 0x10000000, End: 0x10001000, Prot: unix.PROT_READ,
				Kind: format.MapFile, Name: secret.Path, File: len(p.Files) - 1}
			p.Maps = append([]format.Mapping{m}, p.Maps...)
		}, []string{"mapping 10000000-10001000", secret.Path, uid}},
		{"file-saved", func(p *imageEdit) {
			addFD(p, carried, 5, unix.O_RDWR)
		}, []string{"fd 5", carried.Path, uid}},
		{"file-saved-created", func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileRegular, Path: missing, Mode: unix.S_IFREG | 0o644, Carried: true}, 5, unix.O_RDWR)
		}, []string{"fd 5", missing, uid}},
		{"procs-load-memory", func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileRegular, Path: "/proc/self/mem", Pseudo: true}, 5, unix.O_RDWR)
		}, []string{"fd 5", "/proc/self/mem", "procs-load's own"}},
		{"procs-load-fd", func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileRegular, Path: "/dev/fd/0", Pseudo: true}, 5, unix.O_RDONLY)
		}, []string{"fd 5", "/dev/fd/0"}},
		{"cwd", func(p *imageEdit) {
			p.Cwd = "/root"
		}, []string{"working directory", "/root", uid}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "cwd" {
				if st, err := os.Stat("/root"); err != nil || st.Mode().Perm()&0o001 != 0 {
					t.Skip("/root is open to everyone here")
				}
			}
			bad := editImage(t, img, tc.edit)
			// --stdio=inherit: the victim's stderr is a file of the
			// test's, in a folder closed to the user.
			refused(t, loadCmd(bad, "--stdio=inherit"), "features", tc.wants...)
			if _, err := os.Lstat(missing); err == nil {
				os.Remove(missing)
				t.Errorf("%s was created by a refused restore", missing)
			}
		})
	}
	t.Run("honest", func(t *testing.T) {
		_, pid, _ := restoreGoesOn(t, img, "features", "timer", 2, before, "--stdio=inherit")
		want := fmt.Sprintf("%d\t%d\t%d\t%d", u.Uid, u.Uid, u.Uid, u.Uid)
		if got := procStatus(pid)["Uid"]; got != want {
			t.Errorf("restored process's Uid = %q; want %q", got, want)
		}
	})
}

// TestRestoreFailsClean feeds procs-load images that fail at every stage,
// some once the threads exist, and checks each ends within 10 s with exit
// 125, one line, and nothing left: no process, no zombie.
func TestRestoreFailsClean(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	v := start(t, victimArgv(t, "threads"), t.TempDir())
	if _, ok := v.out.wait(lineWait, haveLines([]string{"t0", "t7"}, 1, 0)); !ok {
		t.Fatal("threads victim did not start")
	}
	img := dump(t, v.pid(), false)
	if !v.exited(10 * time.Second) {
		t.Fatal("victim still runs after procs-dump")
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A read-only page of the image, for an rseq area the kernel cannot
	// write to.
	readOnly := func(p *imageEdit) uint64 {
		for _, m := range p.Maps {
			if m.Prot == unix.PROT_READ && m.Kind == format.MapFile {
				return m.Start
			}
		}
		t.Fatal("no read-only mapping in the image")
		return 0
	}
	for _, tc := range []struct {
		name  string
		args  []string
		edit  func(p *imageEdit)
		wants []string
	}{
		{"thread-id-taken", []string{"--pid=keep"}, func(p *imageEdit) {
			p.Threads[3].TID = os.Getpid() // ours: taken
		}, []string{strconv.Itoa(os.Getpid()), "in use"}},
		{"thread-name-too-long", nil, func(p *imageEdit) {
			p.Threads[2].Comm = strings.Repeat("x", 5000)
		}, []string{"thread", "name"}},
		{"pending-signal-unparsable", nil, func(p *imageEdit) {
			p.Threads[2].Pending = [][]byte{{1, 2, 3}}
		}, []string{"pending signal"}},
		{"timer-missing-thread", nil, func(p *imageEdit) {
			p.Timers = append(p.Timers, format.PosixTimer{ID: 77, Clock: 1, Notify: 4, Signo: 10, Target: 4000000})
		}, []string{"timer 77", "4000000"}},
		{"rseq-misaligned", nil, func(p *imageEdit) {
			p.Threads[1].Rseq.Addr = 0x1003
		}, []string{"rseq"}},
		{"thread-id-1-pidns", []string{"--pid=ns"}, func(p *imageEdit) {
			p.Threads[3].TID = 1 // the namespace's init's
		}, []string{"id 1", "init"}},
		{"rseq-read-only", nil, func(p *imageEdit) {
			p.Threads[1].Rseq = format.Rseq{Addr: readOnly(p), Size: 32, Sig: 0x53053053}
		}, []string{"rseq"}},
		{"fifo-as-file", nil, func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileRegular, Path: fifo, Pseudo: true}, 9, unix.O_RDONLY)
		}, []string{"fd 9", fifo, "named pipe"}},
		{"fifo-as-device", nil, func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileChar, Path: fifo}, 9, unix.O_WRONLY)
		}, []string{"fd 9", fifo, "named pipe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editImage(t, img, tc.edit)
			failsClean(t, loadCmd(bad, tc.args...), tc.wants...)
		})
	}
}

// TestPagesOutsideMemory restores an image with a PAGES record where
// the process has no mapping: where procs-load puts the code it runs in
// the process while it still has root's credentials (the first free
// 64 KiB from 4 GiB up). It is refused before a page is written; in a
// PID namespace too (the namespace and its init exist by then).
func TestPagesOutsideMemory(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	u := testUser(t)
	img, _ := userImage(t, u)
	bad := filepath.Join(t.TempDir(), "bad")
	code := make([]byte, format.PageSize)
	for i := range code {
		code[i] = 0xcc // int3
	}
	err := rewriteImageWith(img, bad, func(p []byte) ([]byte, error) { return p, nil },
		func(w *format.Writer) error { return w.WritePages(0, 0x100000000, code) })
	if err != nil {
		t.Fatal(err)
	}
	failsClean(t, loadCmd(bad, "--stdio=inherit"), "100000000", "outside the memory of process")
	failsClean(t, loadCmd(bad, "--stdio=inherit", "--pid=ns"), "100000000", "outside the memory of process")
}

// failsClean runs cmd, a procs-load, and checks it ends within 10 s with
// exit 125 and one line naming each of wants, leaving no process of any
// state (zombies too) below the test.
func failsClean(t *testing.T, cmd *exec.Cmd, wants ...string) {
	t.Helper()
	old := map[int]bool{}
	for _, p := range descendants() {
		old[p.pid] = true
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := runTimeout(cmd, 10*time.Second)
	took := time.Since(t0)
	msg := strings.TrimSpace(stderr.String())
	t.Logf("failed in %v: %s", took.Round(time.Millisecond), msg)
	if took >= 10*time.Second {
		t.Errorf("procs-load took %v (killed); want it to fail on its own within 10 s", took.Round(time.Millisecond))
	}
	if code := cmd.ProcessState.ExitCode(); code != 125 {
		t.Errorf("procs-load exit = %d (%v); want 125; stderr: %s", code, err, msg)
	}
	if ls := strings.Split(msg, "\n"); msg == "" || !strings.HasPrefix(ls[0], "procs-load: ") ||
		len(ls) > 2 || (len(ls) == 2 && !strings.HasPrefix(ls[1], "procs-load: hint: ")) {
		t.Errorf("procs-load stderr = %q; want one line \"procs-load: ...\" (and maybe a hint)", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("procs-load message %q does not name %q", msg, w)
		}
	}
	var left []pinfo
	for _, p := range descendants() {
		if !old[p.pid] {
			left = append(left, p)
		}
	}
	if len(left) > 0 {
		t.Errorf("left behind by procs-load: %v", left)
		for _, p := range left {
			killChecked(t, p.pid, p.start)
		}
	}
	t.Logf("%v: %s", took.Round(time.Millisecond), msg)
}
