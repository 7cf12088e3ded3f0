// Package procscmd is the command line of procs, the dispatcher of the
// seed man page. Each command behaves as the pipeline it stands for, and
// runs it in one process with the same code: "save -o FILE" (and save
// with no server) is procs-dump itself (dumpcmd.Main), "restore FILE" is
// procs-load itself (loadcmd.Main), and the commands that talk to
// procs-serve drive the engine (packages dump and restore) and package
// client directly.
package procscmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pborman/getopt/v2"

	"procs/format"
	"procs/pkg/api"
	"procs/pkg/cli"
	"procs/pkg/cli/dumpcmd"
	"procs/pkg/cli/loadcmd"
	"procs/pkg/client"
	"procs/pkg/dump"
	"procs/pkg/restore"
	"procs/pkg/safetext"
)

// Usage is printed by -h and repeated in man/procs.1.
const Usage = `usage: procs save [PID] [-n NAME] [-o FILE] [-K] [-f] [--live] [-z none|zstd|xz]
                  [--external=MODE] [--tcp=established|close] [-v]
       procs restore FILE|PROCS_ID [-d] [--lazy] [--pid=auto|keep|ns|new] [--pidfile=FILE]
                     [--stdio=auto|inherit] [--tcp=established|close]
                     [--trust-uploaded] [-v]
       procs send PID|FILE|PROCS_ID -s HOST[:PORT] [-n NAME] [-K] [-f] [--live] [-z ALGO]
                  [--external=MODE] [--tcp=established|close] [--trust-uploaded] [-v]
       procs receive [PROCS_ID] [-d] [--lazy] [--keep] [--pid=auto|keep|ns|new] [--pidfile=FILE]
                     [--stdio=auto|inherit] [--tcp=established|close]
                     [--trust-uploaded] [-v]
       procs list
       procs delete PROCS_ID...
       procs show FILE|PROCS_ID|- [--json]
       procs -h | --version

Checkpoint, restore and move processes; keep images on procs-serve.

  -s, --server=HOST[:PORT]  the server (default $PROCS_SERVER, else the
                            local server 127.0.0.1:7627); for send, where
                            to send
      --token-file=FILE     token for the server (default
                            $PROCS_TOKEN_FILE, else $PROCS_TOKEN)
  -n, --name=NAME           the one process whose name (comm, executable
                            or argv[0] base name) is NAME, instead of PID
  -o, --output=FILE         save: write the image to FILE
  -K, --nokill              leave the process running after the image is
                            safe
  -f, --file-save           carry the contents of open regular files
      --live                save, send: copy the memory in passes while
                            the process runs; it stops only for the last
                            (as procs-dump --live, with its defaults)
  -z, --compress=ALGO       compress memory pages: none (default), zstd
                            or xz
      --external=MODE       save, send: a unix socket connected to one
                            outside the tree: refuse (default) or close
                            (see procs-dump)
  -d, --detach              restore, receive: do not wait: print the PID
                            of the running process and exit 0 (with
                            --lazy, once all of its pages are in)
      --lazy                restore, receive: run the process before all
                            of its memory is in, as procs-load --lazy
      --pid=MODE            restore, receive: auto (default), keep, ns or
                            new: the PIDs to restore with (see procs-load)
      --pidfile=FILE        restore, receive: write the PID to FILE as
                            the process starts to run
      --stdio=MODE          restore, receive: auto (default): standard
                            streams that were files are opened again, the
                            others are procs's own; inherit: all are
      --tcp=POLICY          established (default): TCP connections travel
                            (root only; the restoring host must have their
                            addresses); close: they come back reset, and
                            listeners listen again
      --keep                receive: leave the image on the server
      --json                show: print JSON for scripts (see procs(1))
      --trust-uploaded      restore, receive, send: take an image of the
                            server even if it runs with credentials that
                            its uploader could not grant
  -v, --verbose             say what happens on stderr
  -h, --help                print this help and exit
      --version             print the version and exit

Exit status: 0 done, 1 failed (a process goes on unharmed), 2 usage
error, 3 refused (no such process, or it holds something procs cannot
carry; it was not touched). show exits 1 when the image is damaged,
after showing what came before the damage. restore and receive exit
like procs-load:
with the status of the restored process, or 125 if procs failed and
left nothing running.
`

const prog = "procs"

// verbs maps each command to the options it takes besides -s,
// --token-file and -v.
var verbs = map[string][]string{
	"save":    {"name", "output", "nokill", "file-save", "live", "compress", "external", "tcp"},
	"restore": {"detach", "lazy", "pid", "pidfile", "stdio", "tcp", "trust-uploaded"},
	"send":    {"name", "nokill", "file-save", "live", "compress", "external", "tcp", "trust-uploaded"},
	"receive": {"detach", "lazy", "keep", "pid", "pidfile", "stdio", "tcp", "trust-uploaded"},
	"list":    nil,
	"delete":  nil,
	"show":    {"json"},
}

type options struct {
	server, tokenFile, name, output, compress, pid, pidfile, stdio, external, tcp string
	nokill, fileSave, detach, keep, json, trust, closeExternal, live, lazy        bool
	cli.Flags
	verb        string
	operands    []string
	compression format.Compression
}

func parse(args []string) (options, error) {
	o := options{compress: "none", pid: "auto", stdio: "auto", external: "refuse", tcp: "established"}
	set := getopt.New()
	set.FlagLong(&o.server, "server", 's')
	set.FlagLong(&o.tokenFile, "token-file", 0)
	set.FlagLong(&o.name, "name", 'n')
	set.FlagLong(&o.output, "output", 'o')
	set.FlagLong(&o.nokill, "nokill", 'K')
	set.FlagLong(&o.fileSave, "file-save", 'f')
	set.FlagLong(&o.live, "live", 0)
	set.FlagLong(&o.lazy, "lazy", 0)
	set.FlagLong(&o.compress, "compress", 'z')
	set.FlagLong(&o.external, "external", 0)
	set.FlagLong(&o.detach, "detach", 'd')
	set.FlagLong(&o.pid, "pid", 0)
	set.FlagLong(&o.pidfile, "pidfile", 0)
	set.FlagLong(&o.stdio, "stdio", 0)
	set.FlagLong(&o.tcp, "tcp", 0)
	set.FlagLong(&o.keep, "keep", 0)
	set.FlagLong(&o.json, "json", 0)
	set.FlagLong(&o.trust, "trust-uploaded", 0)
	o.Register(set)
	ops, err := cli.Parse(set, args)
	if len(ops) > 0 {
		o.verb, o.operands = ops[0], ops[1:]
	}
	if err != nil || o.Help || o.Version {
		return o, err
	}
	takes, ok := verbs[o.verb]
	switch {
	case o.verb == "":
		return o, cli.Usagef("missing command: save, restore, send, receive, list, delete or show")
	case !ok:
		return o, cli.Usagef("unknown command %q", o.verb)
	}
	for _, opt := range []string{"name", "output", "nokill", "file-save", "live", "lazy", "compress", "external", "detach", "pid", "pidfile", "stdio", "tcp", "keep", "json", "trust-uploaded"} {
		if set.IsSet(opt) && !slices.Contains(takes, opt) {
			return o, cli.Usagef("--%s is not an option of %s", opt, o.verb)
		}
	}
	if o.compression, err = format.ParseCompression(o.compress); err != nil {
		return o, cli.Usagef("invalid value %q for --compress: want none, zstd or xz", o.compress)
	}
	if o.closeExternal, err = dumpcmd.ParseExternal(o.external); err != nil {
		return o, err
	}
	if _, ok := loadcmd.PIDModes[o.pid]; !ok {
		return o, cli.Usagef("invalid value %q for --pid: want auto, keep, ns or new", o.pid)
	}
	if set.IsSet("name") && o.name == "" {
		return o, cli.Usagef("empty process name")
	}
	if set.IsSet("server") && o.server == "" {
		return o, cli.Usagef("empty server address for --server")
	}
	if set.IsSet("pidfile") && o.pidfile == "" {
		return o, cli.Usagef("empty file name for --pidfile")
	}
	if _, ok := loadcmd.StdioModes[o.stdio]; !ok {
		return o, cli.Usagef("invalid value %q for --stdio: want auto or inherit", o.stdio)
	}
	if _, err := cli.TCPClose(o.tcp); err != nil {
		return o, err
	}
	n := len(o.operands)
	switch o.verb {
	case "save", "send":
		if o.name != "" && n > 0 {
			return o, cli.Usagef("give a PID or -n NAME, not both")
		}
		if o.name == "" && n != 1 {
			return o, cli.Usagef("%s: want one %s", o.verb, map[string]string{"save": "PID", "send": "PID, FILE or PROCS_ID"}[o.verb])
		}
	case "restore":
		if n != 1 {
			return o, cli.Usagef("restore: want one FILE or PROCS_ID")
		}
	case "receive":
		if n > 1 {
			return o, cli.Usagef("receive: want at most one PROCS_ID")
		}
	case "list":
		if n > 0 {
			return o, cli.Usagef("list: unexpected argument %q", o.operands[0])
		}
	case "delete":
		if n == 0 {
			return o, cli.Usagef("delete: want a PROCS_ID")
		}
	case "show":
		if n != 1 {
			return o, cli.Usagef("show: want one FILE, PROCS_ID or -")
		}
	}
	return o, nil
}

// cmd is one run of procs.
type cmd struct {
	o                     options
	stdin, stdout, stderr *os.File
	msg                   *cli.Msg
	ctx                   context.Context // cancelled by SIGINT and SIGTERM
}

// Main runs procs with args (args[0] is the program name) and returns its
// exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	msg := cli.NewMsg(prog, stderr)
	o, err := parse(args)
	usageCode := cli.ExitUsage
	if o.verb == "restore" || o.verb == "receive" {
		usageCode = cli.ExitLoadFailure
	}
	cli.CatchSIGPIPE() // restore and receive start processes
	if code, done := cli.Preamble(msg, stdout, Usage, o.Flags, err, usageCode); done {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := &cmd{o: o, stdin: stdin, stdout: stdout, stderr: stderr, msg: msg, ctx: ctx}
	switch o.verb {
	case "save":
		return c.save()
	case "restore":
		return c.restore(stop)
	case "send":
		return c.send()
	case "receive":
		return c.receive(stop)
	case "list":
		return c.list()
	case "show":
		return c.show()
	}
	return c.delete()
}

// fail prints err and returns code.
func (c *cmd) fail(code int, err error) int {
	c.msg.EndProgress()
	var ue *client.UntrustedError
	if errors.As(err, &ue) && cli.Hint(err) == "" {
		do := "run"
		if c.o.verb == "send" {
			do = "send"
		}
		err = cli.WithHint(err, fmt.Sprintf("pass --trust-uploaded to %s it anyway", do))
	}
	if errors.Is(err, syscall.ECONNREFUSED) && cli.Hint(err) == "" {
		err = cli.WithHint(err, "is procs-serve running there? give the server with -s HOST[:PORT] or PROCS_SERVER")
	}
	c.msg.Error(err)
	return code
}

// client returns a client of server, with the token of --token-file or
// the environment.
func (c *cmd) client(server string) (*client.Client, error) {
	token, err := client.LoadToken(c.o.tokenFile)
	if err != nil {
		return nil, tokenError{err}
	}
	cl, err := client.New(server, token)
	if err != nil {
		return nil, err
	}
	cl.TrustUploaded = c.o.trust
	return cl, nil
}

// tokenError is a token that could not be read: a failure, where a bad
// server name is a usage error.
type tokenError struct{ error }

func (e tokenError) Unwrap() error { return e.error }

// failClient reports an error of client or local with its status.
func (c *cmd) failClient(err error) int {
	if errors.As(err, new(tokenError)) {
		return c.fail(cli.ExitFailure, err)
	}
	return c.fail(cli.ExitUsage, err)
}

// live is what --live asks of a dump: passes with procs-dump's defaults.
func (c *cmd) live() *dump.LiveOptions {
	if !c.o.live {
		return nil
	}
	return &dump.LiveOptions{}
}

// local returns a client of the local server: -s, $PROCS_SERVER or
// 127.0.0.1:7627.
func (c *cmd) local() (*client.Client, error) {
	return c.client(client.ServerAddr(c.o.server))
}

// dumpArgs is the procs-dump command line that stands for this save.
func (c *cmd) dumpArgs() []string {
	a := []string{"procs-dump", "-z", c.o.compress, "--external", c.o.external, "--tcp=" + c.o.tcp}
	for _, f := range []struct {
		on   bool
		flag string
	}{{c.o.nokill, "-K"}, {c.o.fileSave, "-f"}, {c.o.live, "--live"}, {c.o.Verbose, "-v"}} {
		if f.on {
			a = append(a, f.flag)
		}
	}
	if c.o.output != "" {
		a = append(a, "-o", c.o.output)
	}
	if c.o.name != "" {
		return append(a, "-n", c.o.name)
	}
	return append(a, "--", c.o.operands[0])
}

// save: with -o, or when no local server answers, procs-dump; otherwise
// the image goes to the local server.
func (c *cmd) save() int {
	if c.o.output != "" {
		return dumpcmd.Main(c.dumpArgs(), c.stdin, c.stdout, c.stderr)
	}
	cl, err := c.local()
	if err != nil {
		return c.failClient(err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	err = cl.Ping(ctx)
	cancel()
	var se *client.Error
	if err != nil && !errors.As(err, &se) {
		c.msg.Logf("no server at %s (%v): writing the image to stdout", cl.Server(), err)
		return dumpcmd.Main(c.dumpArgs(), c.stdin, c.stdout, c.stderr)
	}
	if err != nil {
		return c.fail(cli.ExitFailure, err)
	}
	return c.dumpTo(cl)
}

// process finds the process of save or send: -n NAME or the PID operand.
func (c *cmd) process() (cli.Proc, int, error) {
	var p cli.Proc
	var err error
	if c.o.name != "" {
		p, err = cli.FindOne(c.o.name)
	} else if pid, perr := strconv.Atoi(c.o.operands[0]); perr != nil || pid <= 0 {
		return p, cli.ExitUsage, cli.Usagef("invalid PID %q", c.o.operands[0])
	} else {
		p, err = cli.ReadProc(pid)
	}
	var amb *cli.AmbiguousError
	switch {
	case errors.Is(err, cli.ErrNoProcess) || errors.As(err, &amb):
		return p, cli.ExitRefused, err
	case err != nil:
		return p, cli.ExitFailure, err
	case p.PID == os.Getpid():
		return p, cli.ExitRefused, errors.New("procs cannot checkpoint itself")
	}
	return p, cli.ExitOK, nil
}

// dumpTo checkpoints the process straight into an upload to cl and prints
// the id the server gave the image.
func (c *cmd) dumpTo(cl *client.Client) int {
	p, code, err := c.process()
	if err != nil {
		return c.fail(code, err)
	}
	c.msg.Logf("sending process %d (%s) to %s", p.PID, p.Comm, cl.Server())
	e, st, err := dumpUpload(c.ctx, dump.Options{
		PID:           p.PID,
		Kill:          !c.o.nokill,
		FileSave:      c.o.fileSave,
		Compression:   c.o.compression,
		CloseExternal: c.o.closeExternal,
		TCPClose:      cli.TCPPolicies[c.o.tcp],
		Log:           c.msg.Logf,
		Warn:          c.msg.Warnf,
		Progress:      c.msg.ProgressFunc(),
		Live:          c.live(),
	}, cl)
	c.msg.EndProgress()
	if errors.Is(err, dump.ErrExternal) {
		return c.fail(cli.ExitRefused, cli.WithHint(err, dumpcmd.ExternalHint))
	}
	if errors.Is(err, dump.ErrUnsupported) {
		return c.fail(cli.ExitRefused, err)
	}
	if err != nil {
		return c.fail(cli.ExitFailure, err)
	}
	c.msg.Logf("stored as %s on %s: %s, frozen %s, total %s", e.ID, cl.Server(),
		cli.FormatBytes(e.Size), st.Frozen.Round(time.Microsecond), st.Total.Round(time.Microsecond))
	return c.printID(e.ID)
}

func (c *cmd) printID(id string) int {
	if _, err := fmt.Fprintln(c.stdout, id); err != nil {
		// The image is stored: say under which id anyway.
		return c.fail(cli.ExitFailure, fmt.Errorf("write id %s to stdout: %v", id, err))
	}
	return cli.ExitOK
}

// dumpImage is dump.Dump; tests replace it.
var dumpImage = dump.Dump

// dumpUpload dumps a process straight into an upload. The process is
// killed (unless opts.Kill is false) only after the server answered 201:
// Commit waits for that answer, and any failure before lets the process
// go unharmed.
func dumpUpload(ctx context.Context, opts dump.Options, cl *client.Client) (api.Entry, dump.Stats, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := client.NewStream() // the dump writes into the upload itself
	type result struct {
		e   api.Entry
		err error
	}
	up := make(chan result, 1)
	go func() {
		e, err := cl.Upload(ctx, body)
		if err == nil {
			err = errors.New("the server answered before the end of the image")
			body.Abort(err)
			up <- result{e, nil}
			return
		}
		body.Abort(err)
		up <- result{e, err}
	}()
	var got *result
	wait := func() result {
		if got == nil {
			r := <-up
			got = &r
		}
		return *got
	}
	opts.Commit = func() error {
		body.Close()
		return wait().err
	}
	st, err := dumpImage(opts, body)
	if err != nil {
		body.CloseWithError(err)
		if got == nil {
			cancel()
		}
		if r := wait(); r.err != nil && !errors.Is(err, r.err) {
			return api.Entry{}, st, fmt.Errorf("%v (upload: %v)", err, r.err)
		}
		return api.Entry{}, st, err
	}
	body.Close() // in case Dump returned without calling Commit
	r := wait()
	return r.e, st, r.err
}

// restore: a file when one exists by that name (procs-load FILE), else
// that image of the local server.
func (c *cmd) restore(stop func()) int {
	arg := c.o.operands[0]
	if _, err := os.Stat(arg); err == nil || !api.ValidID(arg) {
		a := []string{"procs-load", "--pid=" + c.o.pid}
		if c.o.detach {
			a = append(a, "-d")
		}
		if c.o.lazy {
			a = append(a, "--lazy")
		}
		if c.o.pidfile != "" {
			a = append(a, "--pidfile="+c.o.pidfile)
		}
		a = append(a, "--stdio="+c.o.stdio)
		if c.o.Verbose {
			a = append(a, "-v")
		}
		return loadcmd.Main(append(a, "--", arg), c.stdin, c.stdout, c.stderr)
	}
	cl, err := c.local()
	if err != nil {
		return c.fail(cli.ExitLoadFailure, err)
	}
	body, err := cl.Fetch(c.imageCtx(), arg)
	if err != nil {
		return c.fail(cli.ExitLoadFailure, err)
	}
	return c.run(cl, arg, body, stop, nil, nil)
}

// run restores image id of cl from body, calls running once the process
// runs with all of its pages (failed if it does not), and then waits for
// it like procs-load (or prints its PID with -d).
//
// failed is told whether to keep quiet about its own failure: when the
// pages failed to come, the server is likely gone, and the line that
// says the process was killed is the one that matters.
func (c *cmd) run(cl *client.Client, id string, body io.ReadCloser, stop func(), running func(), failed func(quiet bool)) int {
	c.msg.Logf("restoring %s from %s", id, cl.Server())
	opts := loadcmd.Options(c.msg, c.stdin, c.stdout, c.stderr, c.o.pid, c.o.detach)
	opts.Stdio = loadcmd.StdioModes[c.o.stdio]
	opts.TCPClose = cli.TCPPolicies[c.o.tcp]
	opts.Lazy = c.o.lazy
	if c.o.lazy {
		opts.Remote = c.remote(cl, id)
	}
	pf := loadcmd.WithPIDFile(&opts, c.o.pidfile)
	p, err := restore.Restore(opts, body)
	if err != nil {
		body.Close()
		pf.Remove()
		if failed != nil {
			failed(c.o.lazy) // (see above)
		}
		return c.fail(cli.ExitLoadFailure, loadcmd.Hint(err))
	}
	stop() // from now on signals are the process's business (loadcmd.Wait)
	c.msg.Logf("process %d runs", p.Pid)
	// With --lazy the image is done with once every page is in: then
	// it is removed from the server (or, the process killed for want of
	// them, left there).
	pages := make(chan error, 1)
	go func() {
		err := p.PagesDone()
		body.Close()
		switch {
		case err == nil && running != nil:
			running()
		case err != nil && failed != nil:
			failed(true)
		}
		pages <- err
	}()
	if c.o.detach {
		if err := <-pages; err != nil {
			return c.fail(cli.ExitLoadFailure, err)
		}
		return cli.ExitOK
	}
	status := loadcmd.Wait(p, c.msg)
	body.Close() // the process is gone: no page is needed any more
	<-pages
	return status
}

// receive restores image PROCS_ID of the local server, or the next one
// to arrive, and removes it from the server once the process runs. It
// claims the image first, so that no other receiver restores it too,
// and releases the claim if the restore fails. With --keep it only
// fetches it.
func (c *cmd) receive(stop func()) int {
	cl, err := c.local()
	if err != nil {
		return c.fail(cli.ExitLoadFailure, err)
	}
	var (
		id, token string
		body      io.ReadCloser
	)
	if len(c.o.operands) == 1 {
		id = c.o.operands[0]
		if c.o.keep {
			body, err = cl.Fetch(c.imageCtx(), id)
		} else {
			body, token, err = cl.Claim(c.imageCtx(), id, 0)
		}
	} else {
		c.msg.Logf("waiting for the next image on %s", cl.Server())
		var e api.Entry
		if c.o.keep {
			if e, err = cl.Next(c.ctx, ""); err == nil {
				body, err = cl.Fetch(c.imageCtx(), e.ID)
			}
		} else {
			e, body, token, err = cl.ClaimNext(c.imageCtx(), 0, func(e api.Entry) {
				c.msg.Logf("%s was taken by another receiver; waiting for the next image", e.ID)
			})
		}
		id = e.ID
		if err == nil {
			c.msg.Logf("%s arrived: %s, pid %d, from %s, %s", e.ID, safetext.Clean(e.Comm, 64), e.PID, safetext.Clean(e.Origin, 64), cli.FormatBytes(e.Size))
		}
	}
	if err != nil {
		return c.fail(cli.ExitLoadFailure, err)
	}
	claimed := func(what string, do func(ctx context.Context, id, token string) error, quiet bool) {
		if token == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := do(ctx, id, token); err != nil && !quiet {
			c.msg.Errorf("%s %s failed: %v", what, id, err)
		}
	}
	return c.run(cl, id, body, stop, func() {
		claimed("the process runs, but removing", cl.Commit, false)
	}, func(quiet bool) {
		claimed("releasing", cl.Release, quiet)
	})
}

// imageCtx is the context of the requests that read an image to
// restore: c.ctx, whose signals end them, but with --lazy pages come
// after the process runs, when signals are its own (stop): they must not
// end them then.
func (c *cmd) imageCtx() context.Context {
	if c.o.lazy {
		return context.WithoutCancel(c.ctx)
	}
	return c.ctx
}

// remote lets a lazy restore of image id ask cl for any record of it
// (HTTP ranges), or is nil when the server cannot list its records (an
// image compressed as a whole): the image then streams in its order.
func (c *cmd) remote(cl *client.Client, id string) *restore.Remote {
	recs, err := cl.Records(c.ctx, id)
	if err != nil {
		c.msg.Logf("%s streams in its order: %v", id, err)
		return nil
	}
	ctx := c.imageCtx()
	rm := &restore.Remote{Fetch: func(off, n int64) ([]byte, error) { return cl.Range(ctx, id, off, n) }}
	for _, r := range recs {
		rm.Records = append(rm.Records, restore.Record{Offset: r.Offset, Size: r.Size, Type: format.RecordType(r.Type),
			Task: r.Task, Addr: r.Addr, Len: r.Len})
	}
	return rm
}

// send checks its operand in the order of the seed: a process, a file,
// an image of the local server.
func (c *cmd) send() int {
	dest := c.o.server
	if dest == "" {
		dest = os.Getenv("PROCS_SERVER")
	}
	if dest == "" {
		return c.fail(cli.ExitUsage, cli.WithHint(errors.New("send: where to?"), "give -s HOST[:PORT]"))
	}
	cl, err := c.client(dest)
	if err != nil {
		return c.failClient(err)
	}
	if c.o.name != "" || isProcess(c.o.operands[0]) {
		return c.dumpTo(cl)
	}
	arg := c.o.operands[0]
	var r io.ReadCloser
	if f, err := os.Open(arg); err == nil {
		r = f
	} else if !errors.Is(err, os.ErrNotExist) {
		return c.fail(cli.ExitFailure, err)
	} else if !api.ValidID(arg) {
		if _, err := strconv.Atoi(arg); err == nil {
			return c.fail(cli.ExitRefused, fmt.Errorf("process %s: %w", arg, cli.ErrNoProcess))
		}
		return c.fail(cli.ExitFailure, fmt.Errorf("%s: no such process, file or PROCS_ID", arg))
	} else {
		// The image is on the local server: 127.0.0.1:7627, or
		// $PROCS_SERVER when -s names the destination.
		local := api.DefaultAddr
		if s := os.Getenv("PROCS_SERVER"); s != "" && c.o.server != "" {
			local = s
		}
		lc, err := c.client(local)
		if err != nil {
			return c.fail(cli.ExitFailure, err)
		}
		if r, err = lc.Fetch(c.ctx, arg); err != nil {
			return c.fail(cli.ExitFailure, err)
		}
	}
	e, err := cl.Upload(c.ctx, r)
	r.Close()
	if err != nil {
		return c.fail(cli.ExitFailure, err)
	}
	c.msg.Logf("stored as %s on %s: %s, pid %d, %s", e.ID, cl.Server(), safetext.Clean(e.Comm, 64), e.PID, cli.FormatBytes(e.Size))
	return c.printID(e.ID)
}

// isProcess reports whether s is the PID of a running process.
func isProcess(s string) bool {
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
		return false
	}
	_, err = cli.ReadProc(pid)
	return err == nil
}

func (c *cmd) list() int {
	cl, err := c.local()
	if err != nil {
		return c.failClient(err)
	}
	es, err := cl.List(c.ctx)
	if err != nil {
		return c.fail(cli.ExitFailure, err)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "PROCS_ID\tNAME\tPID\tSIZE\tARRIVED\tORIGIN\tUPLOADER")
	for _, e := range es {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", safetext.Clean(e.ID, 16), safetext.Clean(e.Comm, 64), e.PID, cli.FormatBytes(e.Size),
			e.Arrived.Local().Format("2006-01-02 15:04:05"), safetext.Clean(e.Origin, 64), uploader(e))
	}
	if err := w.Flush(); err != nil {
		return c.fail(cli.ExitFailure, fmt.Errorf("write to stdout: %v", err))
	}
	return cli.ExitOK
}

// uploader says who uploaded e for procs list: "uid 1001 (loopback,
// 127.0.0.1:50432)", and, when the image runs with more than that,
// what: ", runs as uid 0!".
func uploader(e api.Entry) string {
	if e.Uploader == nil {
		return "unknown"
	}
	s := e.Uploader.String()
	if e.Exceeds != "" {
		s += ", runs as " + e.Exceeds + "!"
	}
	return safetext.Clean(s, 200)
}

func (c *cmd) delete() int {
	cl, err := c.local()
	if err != nil {
		return c.failClient(err)
	}
	code := cli.ExitOK
	for _, id := range c.o.operands {
		if err := cl.Delete(c.ctx, id); err != nil {
			code = c.fail(cli.ExitFailure, err)
		} else {
			c.msg.Logf("deleted %s", id)
		}
	}
	return code
}
