// Package loadcmd is the command line of procs-load: it parses options,
// opens the image and calls restore.Restore, then waits for the restored
// process like a shell waits for a command. cmd/procs-load and the procs
// dispatcher both call Main.
package loadcmd

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/pborman/getopt/v2"

	"procs/pkg/cli"
	"procs/pkg/restore"
)

// Usage is printed by -h and repeated in man/procs-load.1.
const Usage = `usage: procs-load [-d] [-v] [--lazy] [--pid=auto|keep|ns|new] [--pidfile=FILE]
                  [--stdio=auto|inherit] [--ipc=auto|host|new] [--tcp=established|close] [FILE|-]
       procs-load -h | --version

Restore the process in image FILE (or stdin) and run it in this terminal;
exit with its status.

  -d, --detach          do not wait: print the PID of the running process
                        and exit 0 (with --lazy: once all pages are in)
      --lazy            run the processes before all of their memory is
                        in: their private anonymous pages keep coming
                        behind them, and a page one touches first is
                        waited for (see procs-load(1), "Lazy restore")
      --pid=MODE        auto (default): the original PIDs if all are free,
                        else the same in a new PID namespace; keep: the
                        original PIDs or fail; ns: the original PIDs in
                        a new PID namespace; new: a new PID (a single
                        process)
      --pidfile=FILE    write the PID to FILE (atomically) as the process
                        starts to run
      --ipc=MODE        System V IPC objects of the image: auto (default):
                        in this IPC namespace when their ids and keys are
                        free, else in a new one; host: here or fail; new:
                        in a new IPC namespace
      --stdio=MODE      auto (default): a standard stream that was a file
                        (a log, /dev/null) is opened again, one that was a
                        terminal, pipe or socket is procs-load's own;
                        inherit: all three are procs-load's own
      --tcp=POLICY      established (default): TCP connections come back
                        as they were (root only; the host must have their
                        addresses); close: they come back reset, and
                        listeners listen again
  -v, --verbose         print each phase with its time and sizes on stderr
  -h, --help            print this help and exit
      --version         print the version and exit

Exit status: that of the restored process (128+N if killed by signal N),
or 125 if procs-load itself failed and nothing was left running. With -d,
0 once the process runs.
`

const prog = "procs-load"

// StdioModes are the values of --stdio, for procs-load and procs.
var StdioModes = map[string]restore.StdioMode{
	"auto":    restore.StdioAuto,
	"inherit": restore.StdioInherit,
}

// IPCModes are the values of --ipc.
var IPCModes = map[string]restore.IPCMode{
	"auto": restore.IPCAuto,
	"host": restore.IPCHost,
	"new":  restore.IPCNew,
}

// PIDModes are the values of --pid, for procs-load and procs.
var PIDModes = map[string]restore.PIDMode{
	"auto": restore.PIDAuto,
	"keep": restore.PIDKeep,
	"new":  restore.PIDNew,
	"ns":   restore.PIDNS,
}

type options struct {
	detach bool
	lazy   bool
	cli.Flags
	pid     string
	pidfile string
	stdio   string
	ipc     string
	tcp     string
	file    string
}

func parse(args []string) (options, error) {
	var o options
	set := getopt.New()
	set.FlagLong(&o.detach, "detach", 'd')
	set.FlagLong(&o.lazy, "lazy", 0)
	o.pid = "auto"
	set.FlagLong(&o.pid, "pid", 0)
	set.FlagLong(&o.pidfile, "pidfile", 0)
	o.stdio = "auto"
	set.FlagLong(&o.stdio, "stdio", 0)
	o.ipc = "auto"
	set.FlagLong(&o.ipc, "ipc", 0)
	o.tcp = "established"
	set.FlagLong(&o.tcp, "tcp", 0)
	o.Flags.Register(set)
	operands, err := cli.Parse(set, args)
	if err != nil {
		return o, err
	}
	if o.Help || o.Version {
		return o, nil
	}
	if _, ok := PIDModes[o.pid]; !ok {
		return o, cli.Usagef("invalid value %q for --pid: want auto, keep, ns or new", o.pid)
	}
	if set.IsSet("pidfile") && o.pidfile == "" {
		return o, cli.Usagef("empty file name for --pidfile")
	}
	if _, ok := StdioModes[o.stdio]; !ok {
		return o, cli.Usagef("invalid value %q for --stdio: want auto or inherit", o.stdio)
	}
	if _, ok := IPCModes[o.ipc]; !ok {
		return o, cli.Usagef("invalid value %q for --ipc: want auto, host or new", o.ipc)
	}
	if _, err := cli.TCPClose(o.tcp); err != nil {
		return o, err
	}
	switch len(operands) {
	case 0:
		o.file = "-"
	case 1:
		o.file = operands[0]
	default:
		return o, cli.Usagef("too many arguments: %q", operands[1:])
	}
	return o, nil
}

// Main runs procs-load with args (args[0] is the program name) and returns
// its exit status.
//
// While the restored process runs in the foreground, procs-load ignores
// SIGINT and SIGQUIT, as system(3) does: the process shares procs-load's
// process group, so the terminal delivers them to it directly, and it
// decides what they do. SIGTERM sent to procs-load is passed on to the
// process.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	msg := cli.NewMsg(prog, stderr)
	o, err := parse(args)
	cli.CatchSIGPIPE()
	if code, done := cli.Preamble(msg, stdout, Usage, o.Flags, err, cli.ExitLoadFailure); done {
		return code
	}

	in, err := cli.OpenInput(o.file, stdin)
	if err != nil {
		msg.Error(err)
		return cli.ExitLoadFailure
	}
	if in != stdin {
		defer in.Close()
	}
	// stdin is positioned just past the image when it came on stdin.
	opts := Options(msg, stdin, stdout, stderr, o.pid, o.detach)
	opts.Stdio = StdioModes[o.stdio]
	opts.IPC = IPCModes[o.ipc]
	opts.TCPClose = cli.TCPPolicies[o.tcp]
	opts.Lazy = o.lazy
	pf := WithPIDFile(&opts, o.pidfile)
	p, err := restore.Restore(opts, in)
	msg.EndProgress()
	if err != nil {
		pf.Remove()
		msg.Error(Hint(err))
		return cli.ExitLoadFailure
	}
	msg.Logf("process %d runs", p.Pid)
	if o.detach {
		// procs-load gone, its guard would kill the process: the pages
		// not come yet would be zeros.
		if err := p.PagesDone(); err != nil {
			msg.Error(err)
			return cli.ExitLoadFailure
		}
		return cli.ExitOK
	}
	return Wait(p, msg)
}

// Options are the restore options of procs-load and of procs restore and
// receive: the process gets stdin, stdout and stderr, the PID of --pid
// mode pid (a key of PIDModes), and unless detach (-d) the terminal's
// modes. Messages go through msg; just before the process runs, the
// progress line is cleared (it would wipe what the process draws), and
// with detach its PID printed.
func Options(msg *cli.Msg, stdin, stdout, stderr *os.File, pid string, detach bool) restore.Options {
	opts := restore.Options{
		PID:       PIDModes[pid],
		Stdin:     stdin,
		Stdout:    stdout,
		Stderr:    stderr,
		Log:       msg.Logf,
		Warn:      msg.Warnf,
		Progress:  msg.ProgressFunc(),
		VdsoProxy: vdsoProxy(),
		Terminal:  !detach,
		BeforeRun: func(int) error { msg.EndProgress(); return nil },
	}
	if detach {
		opts.BeforeRun = printPID(stdout, msg)
	}
	return opts
}

// printPID returns what -d does just before the restored process runs:
// print its PID on stdout. The PID goes out first because the process
// shares stdout, and could print in the middle of it otherwise.
func printPID(stdout *os.File, msg *cli.Msg) func(pid int) error {
	return func(pid int) error {
		msg.EndProgress()
		if _, err := fmt.Fprintln(stdout, pid); err != nil {
			// The process will run: say where it is anyway.
			msg.Errorf("write pid %d: %v", pid, err)
		}
		return nil
	}
}

// PIDFile is the file --pidfile names, once written.
type PIDFile struct{ path string }

// WithPIDFile has opts write the process's PID to path (nothing when path
// is empty) just before the process runs, after what opts.BeforeRun
// does: in a temp file beside it, renamed over path, so that a reader
// never sees it empty or half written. A failure to write it fails the
// restore. Remove the file when the restore fails after all.
func WithPIDFile(opts *restore.Options, path string) *PIDFile {
	pf := &PIDFile{}
	if path == "" {
		return pf
	}
	before := opts.BeforeRun
	opts.BeforeRun = func(pid int) error {
		if before != nil {
			if err := before(pid); err != nil {
				return err
			}
		}
		if err := cli.WriteFileAtomic(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			return fmt.Errorf("--pidfile: %w", err)
		}
		pf.path = path
		return nil
	}
	return pf
}

// Remove removes the file if it was written.
func (pf *PIDFile) Remove() {
	if pf.path != "" {
		os.Remove(pf.path)
	}
}

// Wait waits for p like system(3): SIGINT and SIGQUIT are the process's
// business, not ours; SIGTERM and SIGHUP are passed on (it may lead a
// process group of its own, which our shell's SIGHUP misses). It returns the process's
// status, or ExitLoadFailure when waiting fails. The procs dispatcher
// waits for the processes it restores with it too.
func Wait(p *restore.Process, msg *cli.Msg) int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM || s == syscall.SIGHUP {
					p.Signal(s.(syscall.Signal))
				}
			case <-done:
				return
			}
		}
	}()
	status, err := p.Wait()
	if err != nil {
		msg.Errorf("wait for process %d: %v", p.Pid, err)
		return cli.ExitLoadFailure
	}
	// With --lazy, what the process forked may outlive it and still
	// lack pages: served until it has them all or is gone.
	if err := p.PagesDone(); err != nil {
		msg.Error(err)
		return cli.ExitLoadFailure
	}
	return status
}

// vdsoProxy says whether PROCS_VDSO_PROXY asks that restored processes
// call this kernel's vDSO through jumps, as they do when their image was
// made on another kernel build (see procs-load(1)).
func vdsoProxy() bool {
	v := os.Getenv("PROCS_VDSO_PROXY")
	return v != "" && v != "0"
}

// Hint adds to a failed restore's error what the user can do about it.
func Hint(err error) error {
	if errors.As(err, new(*restore.FileChangedError)) {
		return cli.WithHint(err, "procs-dump -f carries the contents of open files in the image")
	}
	var locked *restore.LockedError
	if errors.As(err, &locked) && locked.Original {
		return cli.WithHint(err, fmt.Sprintf("process %d has the PID the image's process had: the process dumped with procs-dump -K still runs and holds its locks; end it before restoring its copy", locked.Holder))
	}
	return err
}
