package procscmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"procs/pkg/cli"
	"procs/pkg/client"
	"procs/pkg/dump"
	"procs/pkg/server"
	"procs/pkg/server/servertest"
)

func startServer(t *testing.T, token string) string {
	t.Helper()
	s, err := server.New(server.Config{Dir: filepath.Join(t.TempDir(), "state"), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Serve(ctx, ln, "", "", time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done; s.Close() })
	return ln.Addr().String()
}

// TestDumpUploadKillsOnlyAfterConfirmation runs dumpUpload with a fake
// engine that reports whether it would have killed the process: only when
// Commit, which waits for the server's 201, succeeded.
func TestDumpUploadKillsOnlyAfterConfirmation(t *testing.T) {
	good := servertest.Image(server.Meta{Comm: "victim", PID: 99}, 1<<20, 1)
	bad := bytes.Clone(good)
	bad[1000] ^= 1
	for _, tc := range []struct {
		name        string
		image       []byte
		failMidway  bool // the engine fails before Commit
		serverToken string
		wantKill    bool
	}{
		{name: "good image", image: good, wantKill: true},
		{name: "corrupt image", image: bad},
		{name: "dump fails midway", image: good, failMidway: true},
		{name: "token refused", image: good, serverToken: "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startServer(t, tc.serverToken)
			cl, err := client.New(addr, "")
			if err != nil {
				t.Fatal(err)
			}
			killed := false
			dumpImage = func(opts dump.Options, out io.Writer) (dump.Stats, error) {
				if tc.failMidway {
					out.Write(tc.image[:len(tc.image)/2])
					return dump.Stats{}, errors.New("engine failure")
				}
				if _, err := out.Write(tc.image); err != nil {
					return dump.Stats{}, err
				}
				if err := opts.Commit(); err != nil {
					return dump.Stats{}, err
				}
				killed = opts.Kill
				return dump.Stats{}, nil
			}
			defer func() { dumpImage = dump.Dump }()
			e, _, err := dumpUpload(context.Background(), dump.Options{PID: 99, Kill: true}, cl)
			if killed != tc.wantKill {
				t.Errorf("dumpUpload() killed = %v; want %v", killed, tc.wantKill)
			}
			if (err == nil) != tc.wantKill {
				t.Errorf("dumpUpload() = %+v, %v; want error %v", e, err, !tc.wantKill)
			}
			tok, _ := client.New(addr, tc.serverToken)
			es, err := tok.List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n := len(es); n != map[bool]int{true: 1, false: 0}[tc.wantKill] {
				t.Errorf("server holds %d images; want %v", n, tc.wantKill)
			}
			if tc.wantKill && (es[0].ID != e.ID || es[0].Comm != "victim") {
				t.Errorf("server holds %+v; want %+v", es[0], e)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		verb     string
		operands []string
		output   string
		err      string
	}{
		{[]string{"procs", "save", "15325", "-o", "tmp"}, "save", []string{"15325"}, "tmp", ""},
		{[]string{"procs", "-o", "tmp", "save", "1"}, "save", []string{"1"}, "tmp", ""},
		{[]string{"procs", "send", "-n", "test", "-s", "h"}, "send", nil, "", ""},
		{[]string{"procs", "send", "-s", "h", "--", "-o"}, "send", []string{"-o"}, "", ""},
		{[]string{"procs", "receive", "-d", "--keep"}, "receive", nil, "", ""},
		{[]string{"procs", "list", "-v"}, "list", nil, "", ""},
		{[]string{"procs"}, "", nil, "", "missing command: save, restore, send, receive, list, delete or show"},
		{[]string{"procs", "frob"}, "frob", nil, "", `unknown command "frob"`},
		{[]string{"procs", "send", "-o", "x", "1", "-s", "h"}, "send", []string{"1"}, "x", "--output is not an option of send"},
		{[]string{"procs", "save", "1", "-n", "x"}, "save", []string{"1"}, "", "give a PID or -n NAME, not both"},
		{[]string{"procs", "save"}, "save", nil, "", "save: want one PID"},
		{[]string{"procs", "save", "1", "-z", "lz4"}, "save", []string{"1"}, "", `invalid value "lz4" for --compress: want none, zstd or xz`},
		{[]string{"procs", "restore", "x", "--pid=old"}, "restore", []string{"x"}, "", `invalid value "old" for --pid: want auto, keep, ns or new`},
		{[]string{"procs", "delete"}, "delete", nil, "", "delete: want a PROCS_ID"},
		{[]string{"procs", "list", "-x"}, "", nil, "", "unknown option -x"},
	} {
		o, err := parse(tc.args)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err || !cli.IsUsage(err) {
				t.Errorf("parse(%q) error = %v; want usage error %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || o.verb != tc.verb || !slices.Equal(o.operands, tc.operands) || o.output != tc.output {
			t.Errorf("parse(%q) = %q %q -o %q, %v; want %q %q -o %q", tc.args, o.verb, o.operands, o.output, err, tc.verb, tc.operands, tc.output)
		}
	}
}

// TestClientErrorStatus: a token file that cannot be used is a failure
// (1), a bad server name a usage error (2).
func TestClientErrorStatus(t *testing.T) {
	empty := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"procs", "list", "--token-file", empty}, cli.ExitFailure},
		{[]string{"procs", "delete", "x", "--token-file", filepath.Join(t.TempDir(), "none")}, cli.ExitFailure},
		{[]string{"procs", "list", "-s", "bad host:x:y"}, cli.ExitUsage},
		{[]string{"procs", "list", "-s", ""}, cli.ExitUsage},
		{[]string{"procs", "send", "1", "--server="}, cli.ExitUsage},
	} {
		if got := Main(tc.args, null, null, null); got != tc.want {
			t.Errorf("%q = exit %d; want %d", tc.args, got, tc.want)
		}
	}
}
