// Package dumpcmd is the command line of procs-dump: it parses options,
// opens the output and calls dump.Dump. cmd/procs-dump and the procs
// dispatcher both call Main.
package dumpcmd

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/pborman/getopt/v2"

	"procs/format"
	"procs/pkg/cli"
	"procs/pkg/dump"
)

// Usage is printed by -h and repeated in man/procs-dump.1.
const Usage = `usage: procs-dump [-K] [-f] [--live] [-o FILE] [-z none|zstd|xz] [--external=refuse|close]
                  [--tcp=established|close] [-v] PID
       procs-dump [options] -n NAME
       procs-dump -h | --version

Write an image of process PID to stdout (or FILE), then kill the process.

  -K, --nokill          leave the process running after the dump
  -f, --file-save       carry the contents of open regular files in the image
  -o, --output=FILE     write the image to FILE instead of stdout ("-" is
                        stdout); FILE appears only once complete
  -z, --compress=ALGO   compress memory pages: none (default), zstd or xz
      --live            write the memory in passes while the process runs,
                        and freeze it only for the last pass and the rest
      --passes=N        with --live: at most N passes before the freeze
                        (default 8)
      --pass-small=MIB  with --live: freeze after a pass of at most MIB MiB
                        (default 4)
      --pass-time=SECS  with --live: freeze after SECS seconds of passes
                        (default 60)
  -n, --name=NAME       dump the one process whose name (comm, executable
                        or argv[0] base name) is NAME
      --external=MODE   a unix socket connected to one outside the tree:
                        refuse (default) names it and dumps nothing; close
                        brings it back as a connection its peer closed
      --tcp=POLICY      established (default): TCP connections travel, held
                        in repair mode while the dump runs (root only);
                        close: their addresses alone, to come back reset
  -v, --verbose         print each phase with its time and sizes on stderr
  -h, --help            print this help and exit
      --version         print the version and exit

Exit status: 0 done, 1 failed (the process goes on unharmed), 2 usage
error, 3 refused (no such process, or it holds something procs cannot
carry; it was not touched).
`

const prog = "procs-dump"

type options struct {
	nokill, fileSave bool
	live             bool
	passes           int
	passSmall        int64
	passTime         float64
	cli.Flags
	output, compress, name, external, tcp string
	compression                           format.Compression
	closeExternal, tcpClose               bool
	pid                                   int
}

// ParseExternal reads --external: true for close, false for refuse.
func ParseExternal(s string) (bool, error) {
	switch s {
	case "refuse":
		return false, nil
	case "close":
		return true, nil
	}
	return false, cli.Usagef("invalid value %q for --external: want refuse or close", s)
}

// ExternalHint is the hint of a refusal of a socket connected outside
// the tree.
const ExternalHint = "--external=close brings such a socket back as a connection its peer closed"

func parse(args []string) (options, error) {
	var o options
	set := getopt.New()
	set.FlagLong(&o.nokill, "nokill", 'K')
	set.FlagLong(&o.fileSave, "file-save", 'f')
	set.FlagLong(&o.output, "output", 'o')
	o.compress = "none"
	set.FlagLong(&o.compress, "compress", 'z')
	set.FlagLong(&o.name, "name", 'n')
	o.external = "refuse"
	set.FlagLong(&o.external, "external", 0)
	set.FlagLong(&o.live, "live", 0)
	o.passes, o.passSmall, o.passTime = dump.DefaultPasses, dump.DefaultSmallPass>>20, dump.DefaultPassTime.Seconds()
	set.FlagLong(&o.passes, "passes", 0)
	set.FlagLong(&o.passSmall, "pass-small", 0)
	set.FlagLong(&o.passTime, "pass-time", 0)
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
	if o.compression, err = format.ParseCompression(o.compress); err != nil {
		return o, cli.Usagef("invalid value %q for --compress: want none, zstd or xz", o.compress)
	}
	if o.closeExternal, err = ParseExternal(o.external); err != nil {
		return o, err
	}
	for _, name := range []string{"passes", "pass-small", "pass-time"} {
		if set.IsSet(name) && !o.live {
			return o, cli.Usagef("--%s goes with --live", name)
		}
	}
	if o.passes < 1 || o.passSmall < 0 || o.passTime <= 0 {
		return o, cli.Usagef("--passes wants at least 1, --pass-small 0 or more, --pass-time more than 0")
	}
	if o.tcpClose, err = cli.TCPClose(o.tcp); err != nil {
		return o, err
	}
	if set.IsSet("name") && o.name == "" {
		return o, cli.Usagef("empty process name")
	}
	if set.IsSet("output") && o.output == "" {
		return o, cli.Usagef("empty file name for --output")
	}
	switch {
	case o.name != "" && len(operands) > 0:
		return o, cli.Usagef("give a PID or -n NAME, not both")
	case o.name != "":
	case len(operands) == 0:
		return o, cli.Usagef("missing PID")
	case len(operands) > 1:
		return o, cli.Usagef("too many arguments: %q", operands[1:])
	default:
		pid, err := strconv.Atoi(operands[0])
		if err != nil || pid <= 0 {
			return o, cli.Usagef("invalid PID %q", operands[0])
		}
		o.pid = pid
	}
	return o, nil
}

// Main runs procs-dump with args (args[0] is the program name) and returns
// its exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	msg := cli.NewMsg(prog, stderr)
	o, err := parse(args)
	cli.IgnoreSIGPIPE()
	if code, done := cli.Preamble(msg, stdout, Usage, o.Flags, err, cli.ExitUsage); done {
		return code
	}
	code, err := run(o, stdout, msg)
	if err != nil {
		msg.EndProgress()
		msg.Error(err)
	}
	return code
}

func run(o options, stdout *os.File, msg *cli.Msg) (int, error) {
	out, err := cli.OpenOutput(o.output, stdout)
	if err != nil {
		if errors.Is(err, cli.ErrTerminal) {
			return cli.ExitUsage, err
		}
		return cli.ExitFailure, err
	}
	defer out.Close() // removes a partial output unless committed

	var p cli.Proc
	if o.name != "" {
		p, err = cli.FindOne(o.name)
	} else {
		p, err = cli.ReadProc(o.pid)
	}
	var amb *cli.AmbiguousError
	if errors.Is(err, cli.ErrNoProcess) || errors.As(err, &amb) {
		return cli.ExitRefused, err
	} else if err != nil {
		return cli.ExitFailure, err
	}
	if p.PID == os.Getpid() {
		return cli.ExitRefused, errors.New("procs-dump cannot dump itself")
	}
	msg.Logf("dumping process %s", p)

	opts := dump.Options{
		PID:           p.PID,
		Kill:          !o.nokill,
		FileSave:      o.fileSave,
		Compression:   o.compression,
		CloseExternal: o.closeExternal,
		TCPClose:      o.tcpClose,
		Commit: func() error {
			msg.EndProgress()
			start := time.Now()
			err := out.Commit()
			msg.Logf("commit: %s", time.Since(start).Round(time.Microsecond))
			return err
		},
		Log:      msg.Logf,
		Warn:     msg.Warnf,
		Progress: msg.ProgressFunc(),
	}
	if o.live {
		opts.Live = &dump.LiveOptions{MaxPasses: o.passes, SmallPass: max(o.passSmall<<20, 1),
			MaxTime: time.Duration(o.passTime * float64(time.Second))}
	}
	st, err := dump.Dump(opts, out)
	msg.EndProgress()
	if err == nil && !out.Committed() {
		err = out.Commit() // Dump returned without calling Commit
		if err != nil && !o.nokill {
			err = fmt.Errorf("%w (the process may have been killed)", err)
		}
	}
	if err != nil {
		out.Abort()
		if errors.Is(err, dump.ErrExternal) {
			return cli.ExitRefused, cli.WithHint(err, ExternalHint)
		}
		if errors.Is(err, dump.ErrUnsupported) {
			return cli.ExitRefused, err
		}
		return cli.ExitFailure, err
	}
	msg.Logf("done: %s of memory, %s image, %s, frozen %s, total %s",
		cli.FormatBytes(st.PageBytes), cli.FormatBytes(st.ImageBytes), format.Threads(st.Threads),
		st.Frozen.Round(time.Microsecond), st.Total.Round(time.Microsecond))
	return cli.ExitOK, nil
}
