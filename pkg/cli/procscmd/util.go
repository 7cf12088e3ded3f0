package procscmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"procs/pkg/dump"
)

// printer writes messages on stderr as "procs: message".
// TODO(merge): replace with the shared printer of package cli.
type printer struct {
	prog string
	w    *os.File
}

func (p printer) printf(format string, args ...any) {
	fmt.Fprintf(p.w, p.prog+": "+format+"\n", args...)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// syncIfFile fsyncs f when it is something that can be synced (a file);
// pipes and terminals cannot, which is no error.
func syncIfFile(f *os.File) error {
	if err := f.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.EROFS) {
		return err
	}
	return nil
}

// dumpToFile dumps into a temporary file beside name that Commit syncs and
// renames to name, so that the process dies only once the file is whole on
// disk; on failure nothing is left.
// TODO(merge): share with dumpcmd's atomic file output.
func dumpToFile(opts dump.Options, name string) error {
	dir := filepath.Dir(name)
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		f.Close()
		if !renamed {
			os.Remove(f.Name())
		}
	}()
	opts.Commit = func() error {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), name); err != nil {
			return err
		}
		renamed = true
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
	// An error after a successful Commit (the kill failed) leaves the
	// whole file in place.
	_, err = dumpImage(opts, f)
	return err
}

// findByName returns the one process whose name (comm) is name.
// TODO(merge): share with dumpcmd's -n.
func findByName(name string) (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	comm := name
	if len(comm) > 15 { // the kernel keeps 15 bytes of it
		comm = comm[:15]
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		if strings.TrimSuffix(string(b), "\n") == comm {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	switch len(pids) {
	case 0:
		return 0, fmt.Errorf("no process named %q", name)
	case 1:
		return pids[0], nil
	}
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return 0, fmt.Errorf("several processes named %q: %s; give a PID", name, strings.Join(s, " "))
}

// dumpImage is dump.Dump; tests replace it.
var dumpImage = dump.Dump
