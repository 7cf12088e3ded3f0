package procscmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/pborman/getopt/v2"

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
			e, err := dumpUpload(context.Background(), dump.Options{PID: 99, Kill: true}, cl)
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

func TestParseInterleaved(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantPos []string
		wantOut string
	}{
		{[]string{"procs", "save", "15325", "-o", "tmp"}, []string{"save", "15325"}, "tmp"},
		{[]string{"procs", "-o", "tmp", "save", "1"}, []string{"save", "1"}, "tmp"},
		{[]string{"procs", "send", "-n", "test", "-s", "h", "--", "-o"}, []string{"send", "-o"}, ""},
	} {
		var out string
		set := newSetForTest(&out)
		pos, err := parseInterleaved(set, tc.args)
		if err != nil || !equal(pos, tc.wantPos) || out != tc.wantOut {
			t.Errorf("parseInterleaved(%q) = %q, -o %q, %v; want %q, -o %q", tc.args, pos, out, err, tc.wantPos, tc.wantOut)
		}
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func newSetForTest(out *string) *getopt.Set {
	set := getopt.New()
	set.FlagLong(out, "output", 'o')
	var s, n string
	set.FlagLong(&s, "server", 's')
	set.FlagLong(&n, "name", 'n')
	return set
}
