package tests

// End-to-end tests of procs-serve, procs-fetch and procs with the built
// binaries: on loopback, and between two network namespaces joined by a
// veth pair acting as two hosts. The tests here only move images: small
// valid ones made by package servertest, which procs-serve verifies with
// format.Verify like any other. migrate_test.go moves real processes.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"procs/pkg/api"
	"procs/pkg/cli/fetchcmd"
	"procs/pkg/cli/procscmd"
	"procs/pkg/cli/servecmd"
	"procs/pkg/server"
	"procs/pkg/server/servertest"
)

// serveBins builds procs-serve, procs-fetch and procs into a temporary
// directory, or uses $PROCS_BIN when set.
func serveBins(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("PROCS_BIN"); d != "" {
		return d
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "procs/cmd/procs-serve", "procs/cmd/procs-fetch", "procs/cmd/procs")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// writeImage writes an image of size payload bytes to a new file.
func writeImage(t *testing.T, dir, name string, m server.Meta, size int, seed byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := servertest.Write(f, m, size, seed); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// host runs commands on one side: directly, or inside a network namespace.
type host struct {
	ns  string // "" for the test's own namespace
	bin string
	env []string
}

func (h host) command(name string, args ...string) *exec.Cmd {
	bin := filepath.Join(h.bin, name)
	var cmd *exec.Cmd
	if h.ns == "" {
		cmd = exec.Command(bin, args...)
	} else {
		cmd = exec.Command("ip", append([]string{"netns", "exec", h.ns, bin}, args...)...)
	}
	cmd.Env = append(os.Environ(), h.env...)
	return cmd
}

// run runs a command to its end and returns stdout, stderr and the exit
// status.
func (h host) run(t *testing.T, stdin io.Reader, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := h.command(name, args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v", name, args, err)
	return "", "", -1
}

// must runs a command that must succeed and returns its stdout.
func (h host) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, errs, code := h.run(t, nil, name, args...)
	if code != 0 {
		t.Fatalf("%s %s = exit %d, stderr %q; want 0", name, strings.Join(args, " "), code, errs)
	}
	return out
}

// startServer starts procs-serve and waits until it answers from client.
func startServer(t *testing.T, srv, client host, addr, dir string, extra ...string) *serverProc {
	t.Helper()
	args := append([]string{"-l", addr, "-d", dir}, extra...)
	cmd := srv.command("procs-serve", args...)
	var errb syncBuffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill() // by PID, a process this test started
			<-exited
		}
		if t.Failed() {
			t.Logf("procs-serve stderr:\n%s", errb.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errs, code := client.run(t, nil, "procs", "list", "-s", addr)
		if code == 0 {
			return &serverProc{cmd, exited}
		}
		select {
		case <-exited:
			t.Fatalf("procs-serve %v exited: %s", args, errb.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("procs-serve on %s does not answer: %s", addr, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type serverProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// stopServer sends SIGTERM and checks a clean exit.
func stopServer(t *testing.T, s *serverProc) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("procs-serve still running 10s after SIGTERM")
	}
	if !s.cmd.ProcessState.Success() {
		t.Errorf("procs-serve after SIGTERM: %v; want exit 0", s.cmd.ProcessState)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stateFiles lists the server's state directory.
func stateFiles(t *testing.T, dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, de := range des {
		if de.Name() != server.LockName {
			n = append(n, de.Name())
		}
	}
	return n
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// exercise runs the common scenario from client against a server at addr
// keeping its images in state.
func exercise(t *testing.T, client host, addr, state string) {
	work := t.TempDir()
	img := writeImage(t, work, "img", server.Meta{Comm: "victim", PID: 4321, Host: "hosta"}, 3<<20, 1)
	want, _ := os.ReadFile(img)

	t.Run("send list fetch delete", func(t *testing.T) {
		id := strings.TrimSpace(client.must(t, "procs", "send", img, "-s", addr))
		if !api.ValidID(id) {
			t.Fatalf("procs send printed %q; want an id", id)
		}
		list := client.must(t, "procs", "list", "-s", addr)
		if !strings.Contains(list, id) || !strings.Contains(list, "victim") || !strings.Contains(list, "4321") {
			t.Errorf("procs list = %q; want %s victim 4321", list, id)
		}
		got := client.must(t, "procs-fetch", "-s", addr, id)
		if got != string(want) {
			t.Errorf("procs-fetch %s: %d bytes, differ from the image sent (%d bytes)", id, len(got), len(want))
		}
		got = client.must(t, "procs-fetch", "-s", addr, "--delete", id)
		if got != string(want) {
			t.Errorf("procs-fetch --delete %s: image differs", id)
		}
		_, errs, code := client.run(t, nil, "procs-fetch", "-s", addr, id)
		if code != 1 || !strings.Contains(errs, "no image "+id) {
			t.Errorf("procs-fetch of a deleted id = exit %d, %q; want 1 and \"no image %s\"", code, errs, id)
		}
		id2 := strings.TrimSpace(client.must(t, "procs", "send", img, "-s", addr))
		client.must(t, "procs", "delete", "-s", addr, id2)
		if list := client.must(t, "procs", "list", "-s", addr); strings.Contains(list, id2) {
			t.Errorf("procs list after delete = %q", list)
		}
		_, errs, code = client.run(t, nil, "procs", "delete", "-s", addr, id2)
		if code != 1 || !strings.Contains(errs, "no image") {
			t.Errorf("procs delete of a deleted id = exit %d, %q; want 1", code, errs)
		}
	})

	t.Run("fetch next", func(t *testing.T) {
		cmd := client.command("procs-fetch", "-s", addr, "next")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		id := strings.TrimSpace(client.must(t, "procs", "send", img, "-s", addr))
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil || out.String() != string(want) {
				t.Errorf("procs-fetch next = %v, %d bytes; want the image sent", err, out.Len())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("procs-fetch next did not return after %s arrived", id)
		}
		client.must(t, "procs", "delete", "-s", addr, id)
	})

	t.Run("corrupt upload rejected", func(t *testing.T) {
		bad := bytes.Clone(want)
		bad[len(bad)/2] ^= 1
		p := filepath.Join(work, "bad")
		os.WriteFile(p, bad, 0o600)
		_, errs, code := client.run(t, nil, "procs", "send", p, "-s", addr)
		if code != 1 || !strings.Contains(errs, "bad image") {
			t.Errorf("procs send of a corrupt image = exit %d, %q; want 1 and \"bad image\"", code, errs)
		}
		if list := client.must(t, "procs", "list", "-s", addr); strings.Count(list, "\n") != 1 {
			t.Errorf("procs list = %q; want only the header", list)
		}
		if f := stateFiles(t, state); len(f) != 0 {
			t.Errorf("state directory = %v; want empty", f)
		}
	})

	t.Run("connection cut mid-upload", func(t *testing.T) {
		// procs send reads the image from a pipe; it is killed halfway.
		cmd := client.command("procs", "send", "/dev/stdin", "-s", addr)
		pw, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Write(want[:len(want)/2])
		deadline := time.Now().Add(10 * time.Second)
		for len(stateFiles(t, state)) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cmd.Process.Kill() // by PID, a process this test started
		cmd.Wait()
		pw.Close()
		for len(stateFiles(t, state)) != 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if f := stateFiles(t, state); len(f) != 0 {
			t.Errorf("state directory after a cut upload = %v; want empty", f)
		}
		if list := client.must(t, "procs", "list", "-s", addr); strings.Count(list, "\n") != 1 {
			t.Errorf("procs list = %q; want only the header", list)
		}
	})

	t.Run("ten sends at once", func(t *testing.T) {
		const n = 10
		imgs := make([]string, n)
		for i := range imgs {
			imgs[i] = writeImage(t, work, fmt.Sprint("img", i), server.Meta{Comm: fmt.Sprint("v", i), PID: 1000 + i}, 1<<20+i*4096, byte(i+2))
		}
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range imgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := client.command("procs", "send", imgs[i], "-s", addr)
				out, err := cmd.Output()
				if err != nil {
					t.Errorf("procs send %d: %v", i, err)
				}
				ids[i] = strings.TrimSpace(string(out))
			}()
		}
		wg.Wait()
		for i, id := range ids {
			want, _ := os.ReadFile(imgs[i])
			if got := client.must(t, "procs-fetch", "-s", addr, "--delete", id); got != string(want) {
				t.Errorf("image %d (%s): fetched %d bytes, differ from the %d sent", i, id, len(got), len(want))
			}
		}
	})
}

func TestServeLoopback(t *testing.T) {
	bin := serveBins(t)
	h := host{bin: bin, env: []string{"PROCS_SERVER=", "PROCS_TOKEN=", "PROCS_TOKEN_FILE="}}
	addr := freePort(t)
	state := filepath.Join(t.TempDir(), "state")
	srv := startServer(t, h, h, addr, state)
	exercise(t, h, addr, state)
	stopServer(t, srv)

	t.Run("default port", func(t *testing.T) {
		out, _, _ := h.run(t, nil, "procs-serve", "-h")
		if !strings.Contains(out, "127.0.0.1:7627") {
			t.Errorf("procs-serve -h does not name the default 127.0.0.1:7627")
		}
	})
	t.Run("refuses public address without token", func(t *testing.T) {
		_, errs, code := h.run(t, nil, "procs-serve", "-l", "0.0.0.0:0", "-d", state)
		if code != 2 || !strings.Contains(errs, "without a token") {
			t.Errorf("procs-serve -l 0.0.0.0:0 = exit %d, %q; want 2 and a refusal", code, errs)
		}
		// Refused before binding: an address this machine lacks (TEST-NET-1)
		// gets the same refusal, not a bind error.
		_, errs, code = h.run(t, nil, "procs-serve", "-l", "192.0.2.10:7627", "-d", state)
		if code != 2 || !strings.Contains(errs, "without a token") {
			t.Errorf("procs-serve -l 192.0.2.10:7627 = exit %d, %q; want 2 and a refusal", code, errs)
		}
	})
}

// netns creates two network namespaces joined by a veth pair, with
// addresses in 10.231.N.0/24 inside them only, and removes them at the
// end of the test. It returns the names and the two addresses.
func netns(t *testing.T) (nsA, nsB, ipA, ipB string) {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is missing")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	pid := os.Getpid()
	nsA, nsB = fmt.Sprintf("procs-t-%d-a", pid), fmt.Sprintf("procs-t-%d-b", pid)
	vA, vB := fmt.Sprintf("pt%da", pid), fmt.Sprintf("pt%db", pid)
	net := fmt.Sprintf("10.231.%d", pid%250+1)
	ipA, ipB = net+".1", net+".2"
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	ip("netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	ip("link", "add", vA, "netns", nsA, "type", "veth", "peer", "name", vB, "netns", nsB)
	ip("-n", nsA, "addr", "add", ipA+"/24", "dev", vA)
	ip("-n", nsB, "addr", "add", ipB+"/24", "dev", vB)
	for _, x := range [][2]string{{nsA, vA}, {nsB, vB}, {nsA, "lo"}, {nsB, "lo"}} {
		ip("-n", x[0], "link", "set", x[1], "up")
	}
	return nsA, nsB, ipA, ipB
}

func TestServeTwoHosts(t *testing.T) {
	nsA, nsB, _, ipB := netns(t)
	bin := serveBins(t)
	work := t.TempDir()
	tokenFile := filepath.Join(work, "token")
	os.WriteFile(tokenFile, []byte("e2e-token-0123456789\n"), 0o600)
	clean := []string{"PROCS_SERVER=", "PROCS_TOKEN=", "PROCS_TOKEN_FILE="}
	a := host{ns: nsA, bin: bin, env: append(clean, "PROCS_TOKEN_FILE="+tokenFile)}
	aNoToken := host{ns: nsA, bin: bin, env: clean}
	b := host{ns: nsB, bin: bin, env: clean}
	addr := net.JoinHostPort(ipB, "7627")
	state := filepath.Join(work, "state")

	t.Run("refuses to listen without a token", func(t *testing.T) {
		_, errs, code := b.run(t, nil, "procs-serve", "-l", addr, "-d", state)
		if code != 2 || !strings.Contains(errs, "without a token") {
			t.Errorf("procs-serve -l %s without token = exit %d, %q; want 2 and a refusal", addr, code, errs)
		}
	})

	srv := startServer(t, b, a, addr, state, "--token-file", tokenFile)

	t.Run("request without token refused", func(t *testing.T) {
		_, errs, code := aNoToken.run(t, nil, "procs", "list", "-s", addr)
		if code != 1 || !strings.Contains(errs, "token") {
			t.Errorf("procs list without token = exit %d, %q; want 1 and a token error", code, errs)
		}
		img := writeImage(t, work, "img-nt", server.Meta{Comm: "x"}, 1000, 9)
		_, _, code = aNoToken.run(t, nil, "procs", "send", img, "-s", addr)
		if code != 1 {
			t.Errorf("procs send without token = exit %d; want 1", code)
		}
		bad := host{ns: nsA, bin: bin, env: append(clean, "PROCS_TOKEN=wrong")}
		if _, _, code = bad.run(t, nil, "procs", "list", "-s", addr); code != 1 {
			t.Errorf("procs list with a wrong token = exit %d; want 1", code)
		}
		if _, err := exec.LookPath("curl"); err == nil {
			out, _ := exec.Command("ip", "netns", "exec", nsA, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://"+addr+"/v1/images").Output()
			if string(out) != "401" {
				t.Errorf("curl without token: HTTP %s; want 401", out)
			}
		}
		if f := stateFiles(t, state); len(f) != 0 {
			t.Errorf("state directory = %v; want empty", f)
		}
	})

	exercise(t, a, addr, state)

	t.Run("origin is the sending host", func(t *testing.T) {
		img := writeImage(t, work, "img-o", server.Meta{Comm: "o"}, 1000, 10)
		id := strings.TrimSpace(a.must(t, "procs", "send", img, "-s", addr))
		hn, _ := os.Hostname()
		if list := a.must(t, "procs", "list", "-s", addr); !strings.Contains(list, hn) {
			t.Errorf("procs list = %q; want origin %s", list, hn)
		}
		a.must(t, "procs", "delete", "-s", addr, id)
	})

	stopServer(t, srv)
}

// TestServeUsageInManPages checks that every option of the usage texts of
// procs-serve, procs-fetch and procs appears in the man page.
func TestServeUsageInManPages(t *testing.T) {
	re := regexp.MustCompile(`(?:^|[\s\[|])(--?[a-zA-Z][a-zA-Z-]*)`)
	for _, tc := range []struct{ usage, page string }{
		{servecmd.Usage, "../man/procs-serve.8"},
		{fetchcmd.Usage, "../man/procs-fetch.1"},
		{procscmd.Usage, "../man/procs.1"},
	} {
		b, err := os.ReadFile(tc.page)
		if err != nil {
			t.Fatal(err)
		}
		// In roff, "-" is written "\-".
		page := strings.ReplaceAll(string(b), `\-`, "-")
		for _, m := range re.FindAllStringSubmatch(tc.usage, -1) {
			if !strings.Contains(page, m[1]) {
				t.Errorf("%s does not mention %s of the usage", tc.page, m[1])
			}
		}
	}
}
