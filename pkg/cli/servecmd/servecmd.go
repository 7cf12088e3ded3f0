// Package servecmd is the command line of procs-serve, the daemon that
// keeps images under ids (package server does the work).
package servecmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pborman/getopt/v2"

	"procs/pkg/api"
	"procs/pkg/cli"
	"procs/pkg/client"
	"procs/pkg/server"
)

// Usage is printed by -h and repeated in man/procs-serve.8.
const Usage = `usage: procs-serve [-l ADDR:PORT|unix:PATH] [-d DIR] [--token-file=FILE]
                   [--cert=FILE --key=FILE] [--max-size=SIZE]
                   [--max-uploads=N] [--read-timeout=SECONDS] [-v]
       procs-serve -h | --version

Keep procs images under ids and hand them out over HTTP.

  -l, --listen=ADDR:PORT   listen there (default 127.0.0.1:7627); a
                           unix socket with unix:PATH (or a PATH
                           starting with / or .)
  -d, --dir=DIR            state directory (default $STATE_DIRECTORY,
                           else /var/lib/procs as root,
                           else ~/.local/state/procs)
      --token-file=FILE    require "Authorization: Bearer TOKEN", TOKEN
                           being the first line of FILE (16 bytes at
                           least; FILE readable by its owner only), and
                           let token holders upload what FILE's owner
                           could run; mandatory on any address but
                           loopback
      --cert=FILE          serve HTTPS with this certificate (PEM) ...
      --key=FILE           ... and this private key (PEM)
      --max-size=SIZE      refuse images larger than SIZE bytes; K, M, G
                           and T suffixes; 0 for no limit (default 64G)
      --max-uploads=N      receive at most N uploads at once, N more
                           waiting up to 10 s; answer more with 503
                           and Retry-After (default 8)
      --read-timeout=SECONDS  cut a connection whose request headers
                           take longer, or whose upload sends nothing
                           for that long (default 30)
  -v, --verbose            log each request on stderr
  -h, --help               print this help and exit
      --version            print the version and exit

Exit status: 0 shut down by SIGTERM or SIGINT, 1 failed (cannot listen,
bad state directory or token file), 2 usage error (also: a public
address without --token-file).
`

const prog = "procs-serve"

// ShutdownGrace is how long requests in flight may run after SIGTERM.
const ShutdownGrace = 60 * time.Second

// Verify checks images as they stream in: format.Verify, through
// server.VerifyImage.
var Verify server.Verifier = server.VerifyImage

type options struct {
	listen, dir, tokenFile, cert, key, maxSize string
	cli.Flags
	limit       int64
	maxUploads  int
	readTimeout float64
}

func parse(args []string) (options, error) {
	o := options{maxSize: "64G", maxUploads: server.DefaultMaxUploads, readTimeout: server.DefaultReadTimeout.Seconds()}
	set := getopt.New()
	set.FlagLong(&o.listen, "listen", 'l')
	set.FlagLong(&o.dir, "dir", 'd')
	set.FlagLong(&o.tokenFile, "token-file", 0)
	set.FlagLong(&o.cert, "cert", 0)
	set.FlagLong(&o.key, "key", 0)
	set.FlagLong(&o.maxSize, "max-size", 0)
	set.FlagLong(&o.maxUploads, "max-uploads", 0)
	set.FlagLong(&o.readTimeout, "read-timeout", 0)
	o.Register(set)
	ops, err := cli.Parse(set, args)
	switch {
	case err != nil || o.Help || o.Version:
		return o, err
	case len(ops) > 0:
		return o, cli.Usagef("unexpected argument %q", ops[0])
	case (o.cert == "") != (o.key == ""):
		return o, cli.Usagef("--cert and --key go together")
	case o.maxUploads < 1 || o.maxUploads > 10000:
		return o, cli.Usagef("invalid value %d for --max-uploads: want 1 to 10000", o.maxUploads)
	case !(o.readTimeout >= 0.1 && o.readTimeout <= 86400):
		return o, cli.Usagef("invalid value %g for --read-timeout: want 0.1 to 86400 seconds", o.readTimeout)
	}
	if o.limit, err = ParseSize(o.maxSize); err != nil {
		return o, cli.Usagef("invalid value %q for --max-size", o.maxSize)
	}
	if o.dir == "" {
		o.dir = defaultDir()
	}
	return o, nil
}

// Main runs procs-serve with args (args[0] is the program name) and
// returns its exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	msg := cli.NewMsg(prog, stderr)
	o, err := parse(args)
	cli.IgnoreSIGPIPE()
	if code, done := cli.Preamble(msg, stdout, Usage, o.Flags, err, cli.ExitUsage); done {
		return code
	}
	code, err := serve(o, msg)
	if err != nil {
		msg.Error(err)
	}
	return code
}

// listener returns the socket passed by systemd, else a new one on -l
// (refused without a token unless on loopback or a unix socket).
func listener(o options, token string) (net.Listener, int, error) {
	lns, err := server.SystemdListeners()
	switch {
	case err != nil:
		return nil, cli.ExitFailure, err
	case len(lns) > 1:
		for _, l := range lns {
			l.Close()
		}
		return nil, cli.ExitFailure, fmt.Errorf("socket activation passed %d sockets; want one", len(lns))
	case len(lns) == 1 && o.listen != "":
		lns[0].Close()
		return nil, cli.ExitUsage, cli.Usagef("-l given, but systemd passed a socket")
	case len(lns) == 1:
		return lns[0], cli.ExitOK, nil
	}
	if path, ok := client.UnixPath(o.listen); ok {
		ln, err := listenUnix(path)
		if err != nil {
			return nil, cli.ExitFailure, err
		}
		return ln, cli.ExitOK, nil
	}
	addr := api.DefaultAddr
	if o.listen != "" {
		addr = o.listen
		if _, _, err := net.SplitHostPort(addr); err != nil {
			addr = net.JoinHostPort(strings.Trim(addr, "[]"), strconv.Itoa(api.DefaultPort))
		}
	}
	// Asked before listening: nothing may listen elsewhere without a
	// token, even for a moment.
	if token == "" && !server.IsLoopbackAddress(addr) {
		return nil, cli.ExitUsage, noToken(addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, cli.ExitFailure, err
	}
	return ln, cli.ExitOK, nil
}

// listenUnix listens on a unix socket at path that every local user may
// connect to (the server tells them apart by their credentials), after
// removing a socket left there by a server that is gone.
func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, cli.Usagef("empty socket path in -l")
	}
	ln, err := net.Listen("unix", path)
	if errors.Is(err, syscall.EADDRINUSE) {
		if fi, serr := os.Lstat(path); serr == nil && fi.Mode()&os.ModeSocket != 0 {
			if c, derr := net.Dial("unix", path); derr == nil {
				c.Close()
				return nil, fmt.Errorf("listen on %s: a server already listens there", path)
			} else if errors.Is(derr, syscall.ECONNREFUSED) {
				os.Remove(path)
				ln, err = net.Listen("unix", path)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func noToken(addr any) error {
	return cli.WithHint(fmt.Errorf("refusing to listen on %v without a token", addr),
		"give --token-file FILE, or listen on loopback")
}

func serve(o options, msg *cli.Msg) (int, error) {
	token := ""
	var owner *api.Identity
	if o.tokenFile != "" {
		var uid int
		var err error
		if token, uid, err = client.ReadTokenFileOwner(o.tokenFile); err != nil {
			return cli.ExitFailure, err
		}
		// A token holder may upload what the token's owner could run.
		owner = server.NewIdentity(uid, -1, api.AuthToken, "")
	}
	ln, code, err := listener(o, token)
	if err != nil {
		return code, err
	}
	defer ln.Close()
	if !server.IsLoopback(ln.Addr()) && token == "" { // a socket from systemd
		return cli.ExitUsage, noToken(ln.Addr())
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit(o.maxUploads))
	}
	cfg := server.Config{Dir: o.dir, Verify: Verify, MaxSize: o.limit, Token: token, TokenOwner: owner,
		MaxUploads: o.maxUploads, ReadTimeout: time.Duration(o.readTimeout * float64(time.Second))}
	if o.Verbose {
		cfg.Log = msg.Logf
	}
	srv, err := server.New(cfg)
	if err != nil {
		return cli.ExitFailure, err
	}
	defer srv.Close()
	scheme := "http"
	if o.cert != "" {
		scheme = "https"
	}
	msg.Logf("serving %s://%s, images in %s", scheme, ln.Addr(), o.dir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Serve(ctx, ln, o.cert, o.key, ShutdownGrace); err != nil {
		return cli.ExitFailure, err
	}
	return cli.ExitOK, nil
}

// MemoryLimit is the soft limit of procs-serve's Go heap for uploads
// uploads at once (debug.SetMemoryLimit; GOMEMLIMIT overrides it): an
// upload being verified holds at most one decompression window
// (format.MaxRecordWindow) and a few small buffers, and the garbage
// collector works harder near the limit rather than let garbage windows
// pile up.
func MemoryLimit(uploads int) int64 {
	return int64(32+12*uploads) << 20
}

func defaultDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		d, _, _ = strings.Cut(d, ":")
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/procs"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "procs")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "procs")
}

// ParseSize parses a byte count with an optional K, M, G or T suffix
// (powers of 1024).
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSuffix(strings.ToUpper(s), "B")
	if num != "" {
		switch num[len(num)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			num = num[:len(num)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
