// Package servecmd is the command line of procs-serve, the daemon that
// keeps images under ids (package server does the work).
package servecmd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pborman/getopt/v2"

	"procs/pkg/server"
)

// Version is stamped at build time.
var Version = "devel"

// Usage is printed by -h and repeated in man/procs-serve.8.
const Usage = `Usage: procs-serve [-l ADDR:PORT] [-d DIR] [--token-file FILE]
                   [--cert FILE --key FILE] [--max-size SIZE] [-v]
       procs-serve -h | --version

Keep procs images under ids and hand them out over HTTP.

  -l, --listen ADDR:PORT   listen there (default 127.0.0.1:7627)
  -d, --dir DIR            state directory (default $STATE_DIRECTORY,
                           else /var/lib/procs as root,
                           else ~/.local/state/procs)
      --token-file FILE    require "Authorization: Bearer TOKEN", TOKEN
                           being the first line of FILE; mandatory on
                           any address but loopback
      --cert FILE          serve HTTPS with this certificate (PEM) ...
      --key FILE           ... and this private key (PEM)
      --max-size SIZE      refuse images larger than SIZE bytes; K, M, G
                           and T suffixes; 0 for no limit (default 64G)
  -v, --verbose            log each request on stderr
  -h, --help               print this help and exit
      --version            print the version and exit
`

// DefaultAddr is where procs-serve listens unless told otherwise.
const DefaultAddr = "127.0.0.1:7627"

// ShutdownGrace is how long requests in flight may run after SIGTERM.
const ShutdownGrace = 60 * time.Second

// Verify checks images as they stream in: format.Verify, through
// server.VerifyImage.
var Verify server.Verifier = server.VerifyImage

// Main runs procs-serve with args (args[0] is the program name) and
// returns the exit status.
func Main(args []string, stdin, stdout, stderr *os.File) int {
	p := printer{prog: "procs-serve", w: stderr}
	set := getopt.New()
	listen := set.StringLong("listen", 'l', "")
	dir := set.StringLong("dir", 'd', "")
	tokenFile := set.StringLong("token-file", 0, "")
	cert := set.StringLong("cert", 0, "")
	key := set.StringLong("key", 0, "")
	maxSize := set.StringLong("max-size", 0, "64G")
	verbose := set.BoolLong("verbose", 'v')
	help := set.BoolLong("help", 'h')
	version := set.BoolLong("version", 0)
	if err := set.Getopt(args, nil); err != nil {
		p.errorf("%v", err)
		p.hintf("see procs-serve -h")
		return 2
	}
	switch {
	case *help:
		fmt.Fprint(stdout, Usage)
		return 0
	case *version:
		fmt.Fprintln(stdout, "procs-serve", Version)
		return 0
	case set.NArgs() > 0:
		p.errorf("unexpected argument %q", set.Arg(0))
		p.hintf("see procs-serve -h")
		return 2
	case (*cert == "") != (*key == ""):
		p.errorf("--cert and --key go together")
		return 2
	}
	limit, err := ParseSize(*maxSize)
	if err != nil {
		p.errorf("--max-size: %v", err)
		return 2
	}
	if *dir == "" {
		*dir = defaultDir()
	}
	token := ""
	if *tokenFile != "" {
		if token, err = readToken(*tokenFile); err != nil {
			p.errorf("%v", err)
			return 1
		}
	}

	lns, err := server.SystemdListeners()
	if err != nil {
		p.errorf("%v", err)
		return 1
	}
	if len(lns) > 1 {
		p.errorf("socket activation passed %d sockets; want one", len(lns))
		return 1
	}
	var ln net.Listener
	if len(lns) == 1 {
		ln = lns[0]
		if *listen != "" {
			p.errorf("-l given, but systemd passed a socket")
			return 2
		}
	} else {
		addr := DefaultAddr
		if *listen != "" {
			addr = *listen
			if _, _, err := net.SplitHostPort(addr); err != nil {
				addr = net.JoinHostPort(strings.Trim(addr, "[]"), "7627")
			}
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			p.errorf("%v", err)
			return 1
		}
	}
	defer ln.Close()
	if !server.IsLoopback(ln.Addr()) && token == "" {
		p.errorf("refusing to listen on %s without a token", ln.Addr())
		p.hintf("give --token-file FILE, or listen on loopback")
		return 1
	}

	cfg := server.Config{Dir: *dir, Verify: Verify, MaxSize: limit, Token: token}
	if *verbose {
		cfg.Log = func(format string, args ...any) { p.printf(format, args...) }
	}
	srv, err := server.New(cfg)
	if err != nil {
		p.errorf("%v", err)
		return 1
	}
	defer srv.Close()
	scheme := "http"
	if *cert != "" {
		scheme = "https"
	}
	if *verbose {
		p.printf("serving %s://%s, images in %s", scheme, ln.Addr(), *dir)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := srv.Serve(ctx, ln, *cert, *key, ShutdownGrace); err != nil {
		p.errorf("%v", err)
		return 1
	}
	return 0
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

func readToken(name string) (string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return "", err
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("token file %s is empty", name)
	}
	return tok, nil
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

// printer writes messages on stderr as "procs-serve: message".
// TODO(merge): replace with the shared printer of package cli.
type printer struct {
	prog string
	w    *os.File
}

func (p printer) printf(format string, args ...any) {
	fmt.Fprintf(p.w, p.prog+": "+format+"\n", args...)
}
func (p printer) errorf(format string, args ...any) { p.printf(format, args...) }
func (p printer) hintf(format string, args ...any) {
	p.printf("hint: "+format, args...)
}
