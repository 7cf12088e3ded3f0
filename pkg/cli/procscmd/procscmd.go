// Package procscmd is the command line of procs, the dispatcher that
// composes the engine (packages dump and restore) with the procs-serve
// client. It calls the same library code as procs-dump, procs-load and
// procs-fetch instead of running them.
package procscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pborman/getopt/v2"

	"procs/format"
	"procs/pkg/client"
	"procs/pkg/dump"
	"procs/pkg/restore"
)

// Version is stamped at build time.
var Version = "devel"

// Usage is printed by -h and repeated in man/procs.1.
const Usage = `Usage: procs save [PID] [-n NAME] [-o FILE] [-K] [-f] [-z none|zstd|xz] [-v]
       procs restore FILE|PROCS_ID [--pid auto|keep|new] [-v]
       procs send PID|FILE|PROCS_ID -s HOST[:PORT] [-n NAME] [-K] [-f] [-z ...] [-v]
       procs receive [PROCS_ID] [--keep] [--pid auto|keep|new] [-v]
       procs list
       procs delete PROCS_ID...
       procs -h | --version

Checkpoint, restore and move processes; keep images on procs-serve.

  -s, --server HOST[:PORT]  server (default $PROCS_SERVER, else the local
                            server 127.0.0.1:7627); for send, where to send
      --token-file FILE     token for the server (default
                            $PROCS_TOKEN_FILE, else $PROCS_TOKEN)
  -n, --name NAME           the process named NAME instead of PID
  -o, --output FILE         save: write the image to FILE
  -K, --nokill              leave the process running after the image is safe
  -f, --file-save           carry the contents of open regular files
  -z, --compress ALGO       compress memory pages: none, zstd or xz
                            (default none)
      --pid MODE            auto (default), keep or new: the PID to restore with
      --keep                receive: leave the image on the server
  -v, --verbose             say what happens on stderr
  -h, --help                print this help and exit
      --version             print the version and exit
`

// Exit statuses of procs itself; restore and receive exit with the
// restored process's status instead once it runs.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

type options struct {
	server, tokenFile, name, output, compress, pid string
	nokill, fileSave, keep, verbose                bool
	serverSet                                      bool
}

type cmd struct {
	opts                  options
	stdin, stdout, stderr *os.File
	p                     printer
	ctx                   context.Context
}

// Main runs procs with args (args[0] is the program name) and returns the
// exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	c := &cmd{stdin: stdin, stdout: stdout, stderr: stderr, p: printer{prog: "procs", w: stderr}}
	set := getopt.New()
	o := &c.opts
	set.FlagLong(&o.server, "server", 's')
	set.FlagLong(&o.tokenFile, "token-file", 0)
	set.FlagLong(&o.name, "name", 'n')
	set.FlagLong(&o.output, "output", 'o')
	set.FlagLong(&o.nokill, "nokill", 'K')
	set.FlagLong(&o.fileSave, "file-save", 'f')
	o.compress = "none"
	set.FlagLong(&o.compress, "compress", 'z')
	o.pid = "auto"
	set.FlagLong(&o.pid, "pid", 0)
	set.FlagLong(&o.keep, "keep", 0)
	set.FlagLong(&o.verbose, "verbose", 'v')
	help := set.BoolLong("help", 'h')
	version := set.BoolLong("version", 0)
	pos, err := parseInterleaved(set, args)
	if err != nil {
		return c.usage("%v", err)
	}
	o.serverSet = set.IsSet("server")
	switch {
	case *help:
		fmt.Fprint(stdout, Usage)
		return exitOK
	case *version:
		fmt.Fprintln(stdout, "procs", Version)
		return exitOK
	case len(pos) == 0:
		return c.usage("no command")
	}
	var cancel context.CancelFunc
	c.ctx, cancel = signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	signal.Ignore(syscall.SIGPIPE) // a closed stdout is an error, not a death

	verb, rest := pos[0], pos[1:]
	// Options each command accepts besides -s, --token-file and -v.
	allowed := map[string]string{
		"save":    "name output nokill file-save compress",
		"restore": "pid",
		"send":    "name nokill file-save compress",
		"receive": "keep pid",
		"list":    "",
		"delete":  "",
	}
	ok, known := allowed[verb]
	if !known {
		return c.usage("unknown command %q", verb)
	}
	for _, opt := range []string{"name", "output", "nokill", "file-save", "compress", "pid", "keep"} {
		if set.IsSet(opt) && !strings.Contains(" "+ok+" ", " "+opt+" ") {
			return c.usage("--%s is not an option of %s", opt, verb)
		}
	}
	switch verb {
	case "save":
		return c.save(rest)
	case "restore":
		return c.restore(rest)
	case "send":
		return c.send(rest)
	case "receive":
		return c.receive(rest)
	case "list":
		return c.list(rest)
	default:
		return c.delete(rest)
	}
}

// parseInterleaved parses options anywhere among the arguments, as in
// "procs save 15325 -o tmp", and returns the non-option arguments; after
// "--" everything is an argument.
func parseInterleaved(set *getopt.Set, args []string) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := set.Getopt(rest, nil); err != nil {
			return nil, err
		}
		left := set.Args()
		if set.State() == getopt.DashDash || len(left) == 0 {
			return append(pos, left...), nil
		}
		pos = append(pos, left[0])
		rest = append([]string{args[0]}, left[1:]...)
	}
}

func (c *cmd) usage(format string, args ...any) int {
	c.p.printf(format, args...)
	c.p.printf("hint: see procs -h")
	return exitUsage
}

func (c *cmd) fail(err error) int {
	c.p.printf("%v", err)
	return exitError
}

func (c *cmd) logf(format string, args ...any) {
	if c.opts.verbose {
		c.p.printf(format, args...)
	}
}

// client returns a client of the server named by -s, $PROCS_SERVER or the
// local default.
func (c *cmd) client(server string) (*client.Client, error) {
	token, err := client.LoadToken(c.opts.tokenFile)
	if err != nil {
		return nil, err
	}
	return client.New(server, token)
}

func (c *cmd) localClient() (*client.Client, error) {
	return c.client(client.ServerAddr(c.opts.server))
}

func (c *cmd) dumpOptions(pid int) (dump.Options, error) {
	o := dump.Options{PID: pid, Kill: !c.opts.nokill, FileSave: c.opts.fileSave}
	switch c.opts.compress {
	case "none", "":
		o.Compression = format.None
	case "zstd":
		o.Compression = format.Zstd
	case "xz":
		o.Compression = format.XZ
	default:
		return o, fmt.Errorf("unknown compression %q (want none, zstd or xz)", c.opts.compress)
	}
	if c.opts.verbose {
		o.Log = func(format string, args ...any) { c.p.printf(format, args...) }
	}
	return o, nil
}

func (c *cmd) restoreOptions() (restore.Options, error) {
	o := restore.Options{Stdin: c.stdin, Stdout: c.stdout, Stderr: c.stderr}
	switch c.opts.pid {
	case "auto", "":
		o.PID = restore.PIDAuto
	case "keep":
		o.PID = restore.PIDKeep
	case "new":
		o.PID = restore.PIDNew
	default:
		return o, fmt.Errorf("bad --pid %q (want auto, keep or new)", c.opts.pid)
	}
	if c.opts.verbose {
		o.Log = func(format string, args ...any) { c.p.printf(format, args...) }
	}
	return o, nil
}

// target finds the process of "save"/"send": PID or -n NAME.
func (c *cmd) target(args []string) (int, error) {
	switch {
	case c.opts.name != "" && len(args) > 0:
		return 0, errors.New("give a PID or -n NAME, not both")
	case c.opts.name != "":
		return findByName(c.opts.name)
	case len(args) != 1:
		return 0, errors.New("want one PID")
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad PID %q", args[0])
	}
	return pid, nil
}

func (c *cmd) save(args []string) int {
	pid, err := c.target(args)
	if err != nil {
		return c.usage("save: %v", err)
	}
	opts, err := c.dumpOptions(pid)
	if err != nil {
		return c.usage("%v", err)
	}
	if c.opts.output != "" {
		if err := dumpToFile(opts, c.opts.output); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	cl, err := c.localClient()
	if err != nil {
		return c.fail(err)
	}
	pctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	err = cl.Ping(pctx)
	cancel()
	var se *client.Error
	if err != nil && !errors.As(err, &se) {
		// No server: the image goes to stdout, as procs-dump does.
		c.logf("no server at %s (%v); writing the image to stdout", cl.Server(), err)
		if isTerminal(c.stdout) {
			c.p.printf("no server at %s and stdout is a terminal: refusing to write an image there", cl.Server())
			c.p.printf("hint: use -o FILE, redirect stdout or start procs-serve")
			return exitError
		}
		opts.Commit = func() error { return syncIfFile(c.stdout) }
		if _, err := dumpImage(opts, c.stdout); err != nil {
			return c.fail(err)
		}
		return exitOK
	}
	if err != nil {
		return c.fail(err)
	}
	e, err := dumpUpload(c.ctx, opts, cl)
	if err != nil {
		return c.fail(err)
	}
	fmt.Fprintln(c.stdout, e.ID)
	return exitOK
}

// dumpUpload dumps a process straight into an upload. The process is
// killed (unless opts.Kill is false) only after the server answered 201:
// Commit waits for that answer.
func dumpUpload(ctx context.Context, opts dump.Options, cl *client.Client) (client.Entry, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type result struct {
		e   client.Entry
		err error
	}
	up := make(chan result, 1)
	go func() {
		e, err := cl.Upload(ctx, pr)
		if err == nil {
			err2 := errors.New("upload already finished")
			pr.CloseWithError(err2)
		} else {
			pr.CloseWithError(err)
		}
		up <- result{e, err}
	}()
	var got *result
	opts.Commit = func() error {
		pw.Close()
		r := <-up
		got = &r
		return r.err
	}
	_, err := dumpImage(opts, pw)
	if err != nil {
		pw.CloseWithError(err)
		if got == nil {
			cancel()
			r := <-up
			got = &r
		}
		if got.err != nil && !errors.Is(err, got.err) {
			return client.Entry{}, fmt.Errorf("%v (upload: %v)", err, got.err)
		}
		return client.Entry{}, err
	}
	if got == nil {
		// Dump returned without calling Commit: finish the upload now.
		pw.Close()
		r := <-up
		got = &r
	}
	return got.e, got.err
}

// open returns the image named by arg: a file when one exists by that
// name, else that id on the local server.
func (c *cmd) open(arg string) (io.ReadCloser, string, error) {
	f, err := os.Open(arg)
	if err == nil {
		return f, "", nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	if !client.ValidID(arg) {
		return nil, "", fmt.Errorf("%s: no such file, and not a PROCS_ID", arg)
	}
	cl, err := c.localClient()
	if err != nil {
		return nil, "", err
	}
	body, err := cl.Fetch(c.ctx, arg)
	if err != nil {
		return nil, "", err
	}
	return body, arg, nil
}

func (c *cmd) restore(args []string) int {
	if len(args) != 1 {
		return c.usage("restore: want one FILE or PROCS_ID")
	}
	opts, err := c.restoreOptions()
	if err != nil {
		return c.usage("%v", err)
	}
	r, _, err := c.open(args[0])
	if err != nil {
		return c.fail(err)
	}
	return c.run(opts, r, nil)
}

// run restores the image in r, calls running once the process runs, and
// waits for it; procs exits with its status.
func (c *cmd) run(opts restore.Options, r io.ReadCloser, running func()) int {
	proc, err := restore.Restore(opts, r)
	r.Close()
	if err != nil {
		return c.fail(err)
	}
	if running != nil {
		running()
	}
	status, err := proc.Wait()
	if err != nil {
		return c.fail(err)
	}
	return status
}

func (c *cmd) send(args []string) int {
	dest := c.opts.server
	if dest == "" {
		dest = os.Getenv("PROCS_SERVER")
	}
	if dest == "" {
		return c.usage("send: where to? give -s HOST[:PORT]")
	}
	cl, err := c.client(dest)
	if err != nil {
		return c.usage("%v", err)
	}
	var e client.Entry
	switch {
	case c.opts.name != "" || len(args) == 1 && isPID(args[0]):
		pid, err := c.target(args)
		if err != nil {
			return c.usage("send: %v", err)
		}
		opts, err := c.dumpOptions(pid)
		if err != nil {
			return c.usage("%v", err)
		}
		if e, err = dumpUpload(c.ctx, opts, cl); err != nil {
			return c.fail(err)
		}
	case len(args) == 1:
		// A file, else an id on the local server (127.0.0.1:7627, or
		// $PROCS_SERVER when -s names the destination).
		var r io.ReadCloser
		if f, ferr := os.Open(args[0]); ferr == nil {
			r = f
		} else if !errors.Is(ferr, os.ErrNotExist) {
			return c.fail(ferr)
		} else if !client.ValidID(args[0]) {
			return c.fail(fmt.Errorf("%s: no such process, file or PROCS_ID", args[0]))
		} else {
			local := client.DefaultServer
			if s := os.Getenv("PROCS_SERVER"); s != "" && c.opts.serverSet {
				local = s
			}
			lc, err := c.client(local)
			if err != nil {
				return c.fail(err)
			}
			if r, err = lc.Fetch(c.ctx, args[0]); err != nil {
				return c.fail(err)
			}
		}
		e, err = cl.Upload(c.ctx, r)
		r.Close()
		if err != nil {
			return c.fail(err)
		}
	default:
		return c.usage("send: want one PID, FILE or PROCS_ID")
	}
	c.logf("sent: %s (%s, pid %d, %d bytes) on %s", e.ID, e.Comm, e.PID, e.Size, cl.Server())
	fmt.Fprintln(c.stdout, e.ID)
	return exitOK
}

func (c *cmd) receive(args []string) int {
	if len(args) > 1 {
		return c.usage("receive: want at most one PROCS_ID")
	}
	opts, err := c.restoreOptions()
	if err != nil {
		return c.usage("%v", err)
	}
	cl, err := c.localClient()
	if err != nil {
		return c.fail(err)
	}
	var id string
	if len(args) == 1 {
		id = args[0]
	} else {
		c.logf("waiting for the next image on %s", cl.Server())
		e, err := cl.Next(c.ctx, "")
		if err != nil {
			return c.fail(err)
		}
		id = e.ID
		c.logf("%s arrived: %s, pid %d, from %s, %d bytes", e.ID, e.Comm, e.PID, e.Origin, e.Size)
	}
	body, err := cl.Fetch(c.ctx, id)
	if err != nil {
		return c.fail(err)
	}
	return c.run(opts, body, func() {
		if c.opts.keep {
			return
		}
		if err := cl.Delete(context.Background(), id); err != nil {
			c.p.printf("warning: %v", err)
		}
	})
}

func (c *cmd) list(args []string) int {
	if len(args) > 0 {
		return c.usage("list: unexpected argument %q", args[0])
	}
	cl, err := c.localClient()
	if err != nil {
		return c.fail(err)
	}
	es, err := cl.List(c.ctx)
	if err != nil {
		return c.fail(err)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "PROCS_ID\tCOMM\tPID\tSIZE\tARRIVED\tORIGIN")
	for _, e := range es {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", e.ID, e.Comm, e.PID, humanSize(e.Size),
			e.Arrived.Local().Format("2006-01-02 15:04:05"), e.Origin)
	}
	if err := w.Flush(); err != nil {
		return c.fail(err)
	}
	return exitOK
}

func (c *cmd) delete(args []string) int {
	if len(args) == 0 {
		return c.usage("delete: want a PROCS_ID")
	}
	cl, err := c.localClient()
	if err != nil {
		return c.fail(err)
	}
	status := exitOK
	for _, id := range args {
		if err := cl.Delete(c.ctx, id); err != nil {
			status = c.fail(err)
		}
	}
	return status
}

func humanSize(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatInt(n, 10)
	}
	f := float64(n)
	i := -1
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%c", f, units[i])
}

func isPID(s string) bool {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return false
	}
	_, err = os.Stat("/proc/" + s)
	return err == nil
}
