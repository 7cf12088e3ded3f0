package tests

// Who uploaded an image, and what that lets it run as: an ordinary user
// uploads to procs-serve with curl, and root restores.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"procs/format"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// curlUpload uploads image img to the server at addr with curl, running
// as cred, and returns the id the server gave it.
func curlUpload(t *testing.T, cred *syscall.Credential, addr, img string, headers ...string) string {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	args := []string{"-sS", "--fail-with-body", "-T", "-", "-X", "POST"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.Command("curl", append(args, "http://"+addr+"/v1/images")...)
	cmd.Stdin, cmd.Dir = f, "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl upload as uid %d: %v\n%s", cred.Uid, err, out)
	}
	var e struct{ ID string }
	if err := json.Unmarshal(out, &e); err != nil || e.ID == "" {
		t.Fatalf("curl upload answer %q: %v", out, err)
	}
	return e.ID
}

// setCreds rewrites image src into dst with the credentials of its
// PROCESS records replaced by uid and gid (and no groups), every record's
// checksum made right by the format's writer: what an attacker does.
// With thread, the process's stay, and the main thread gets those as its
// own (which a restore gives it instead).
func setCreds(t *testing.T, src, dst string, uid, gid int, thread bool) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	rd, err := format.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w, err := format.NewWriter(&out, rd.Info(), format.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, format.PageBufSize+64)
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h.Type {
		case format.TypePages:
			task, addr, data, err := rd.ReadPages(buf)
			if err == nil {
				err = w.WritePages(task, addr, data)
			}
			if err != nil {
				t.Fatal(err)
			}
		case format.TypeFileData:
			idx, off, data, err := rd.ReadFileData(buf)
			if err == nil {
				err = w.WriteFileData(idx, off, data)
			}
			if err != nil {
				t.Fatal(err)
			}
		case format.TypeProcess:
			p, err := rd.Payload()
			if err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(p))
			d.UseNumber()
			var m map[string]any
			if err := d.Decode(&m); err != nil {
				t.Fatal(err)
			}
			c := map[string]any{"uid": []int{uid, uid, uid, uid}, "gid": []int{gid, gid, gid, gid}, "groups": []int{}}
			if thread {
				m["threads"].([]any)[0].(map[string]any)["creds"] = c
			} else {
				m["creds"] = c
			}
			if err := w.WriteJSON(format.TypeProcess, m); err != nil {
				t.Fatal(err)
			}
		default:
			p, err := rd.Payload()
			if err == nil {
				err = w.WriteRecord(h.Type, p)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runDetached runs a command that may leave a process holding its
// stdout and stderr (procs restore -d): through files, not pipes.
func runDetached(t *testing.T, h host, name string, args ...string) (string, string, int) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "stdout")
	_, errs, code := runFilesOut(t, h, out, name, args...)
	b, _ := os.ReadFile(out)
	return string(b), errs, code
}

// restoredUID restores image id of the server at addr with procs restore
// -d [extra...], and returns the restored process's uids, after killing
// it.
func restoredUID(t *testing.T, h host, addr, id string, extra ...string) string {
	t.Helper()
	// The victim's stderr is a file in a folder of root's, which the
	// user cannot open again: procs's own stream stands in.
	out, errs, code := runDetached(t, h, "procs", append([]string{"restore", id, "-d", "--stdio=inherit", "-s", addr}, extra...)...)
	if code != 0 {
		t.Fatalf("procs restore %s -d %v = exit %d, %s; want 0", id, extra, code, errs)
	}
	pid := printedPID(strings.Split(out, "\n"), errs)
	if pid == 0 {
		t.Fatalf("procs restore -d printed no PID: %q %q", out, errs)
	}
	st := startTime(pid)
	uids := procStatus(pid)["Uid"]
	killChecked(t, pid, st)
	return uids
}

// uploadSetup starts procs-serve on loopback (the default kind: no
// token), creates an ordinary user, and dumps a process of that user (the
// features victim, timer mode), as root: the honest image the user
// uploads, or crafts. It returns the host running the clients, the
// server's address, a work folder, the user and the image.
func uploadSetup(t *testing.T) (host, string, string, *syscall.Credential, string) {
	t.Helper()
	needTools(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	noLeftovers(t)
	cred := testUser(t)
	bin := serveBins(t)
	h := host{bin: bin, env: []string{"PROCS_SERVER=", "PROCS_TOKEN_FILE=", "PROCS_TOKEN=", "PATH=" + binDir + ":" + os.Getenv("PATH")}}
	addr := freeAddr(t)
	work := t.TempDir()
	startServer(t, h, h, addr, filepath.Join(work, "state"))
	fb := publicCopy(t, featuresBin(t))
	p := startAs(t, []string{fb, "timer"}, "/tmp", &syscall.SysProcAttr{Credential: cred})
	expect(t, p.out, "start 0", 0)
	reports(t, p.out, "timer", 1, 0)
	honest, _ := dumpKilled(t, p)
	return h, addr, work, cred, honest
}

// TestUploaderLimitsRestore: an ordinary user uploads with curl, to the
// default kind of server (loopback, no token), an image of its own
// process crafted to say uid 0, with a forged origin; root's procs
// restore refuses it naming both, and runs it with --trust-uploaded. The
// user's honest image runs as the user, and procs list shows uploaders.
func TestUploaderLimitsRestore(t *testing.T) {
	h, addr, work, cred, honest := uploadSetup(t)
	crafted := filepath.Join(work, "crafted")
	setCreds(t, honest, crafted, 0, 0, false)

	bad := curlUpload(t, cred, addr, crafted, "X-Procs-Origin: root-on-the-same-host")
	good := curlUpload(t, cred, addr, honest)
	who := fmt.Sprintf("uploaded by uid %d (loopback, 127.0.0.1:", cred.Uid)

	// procs restore ID: refused, naming the credentials and the uploader.
	_, errs, code := runDetached(t, h, "procs", "restore", bad, "-d", "-s", addr)
	if code != 125 || !strings.Contains(errs, "image "+bad+" runs as uid 0") || !strings.Contains(errs, who) || !strings.Contains(errs, "--trust-uploaded") {
		t.Errorf("procs restore of the crafted image = exit %d, %q; want 125, naming uid 0, %q and --trust-uploaded", code, errs, who)
	}
	// procs receive claims it, refuses it the same way, and gives the
	// claim back: the image stays for whoever trusts it.
	_, errs, code = runDetached(t, h, "procs", "receive", bad, "-d", "-s", addr)
	if code != 125 || !strings.Contains(errs, "runs as uid 0") || !strings.Contains(errs, who) {
		t.Errorf("procs receive of the crafted image = exit %d, %q; want 125, naming uid 0 and %q", code, errs, who)
	}
	// Released: another receiver may claim it (and here takes it away).
	if _, errs, code := h.run(t, nil, "procs-fetch", "-s", addr, "--delete", "--trust-uploaded", "-o", filepath.Join(t.TempDir(), "img"), bad); code != 0 {
		t.Errorf("procs-fetch --delete of the image a refused receive had claimed = exit %d, %q; want 0", code, errs)
	}
	bad = curlUpload(t, cred, addr, crafted)
	// procs-fetch refuses to write it too, so procs-fetch | procs-load
	// is covered.
	out, errs, code := h.run(t, nil, "procs-fetch", "-s", addr, bad)
	if code != 1 || out != "" || !strings.Contains(errs, "runs as uid 0") || !strings.Contains(errs, who) {
		t.Errorf("procs-fetch of the crafted image = exit %d, %d bytes, %q; want 1, nothing, a refusal", code, len(out), errs)
	}
	if out, errs, code := h.run(t, nil, "procs-fetch", "-s", addr, "--trust-uploaded", bad); code != 0 || len(out) == 0 {
		t.Errorf("procs-fetch --trust-uploaded = exit %d, %d bytes, %q; want the image", code, len(out), errs)
	}
	// procs list shows who uploaded what, whatever the origin header says.
	list := h.must(t, "procs", "list", "-s", addr)
	for _, id := range []string{bad, good} {
		line := ""
		for _, l := range strings.Split(list, "\n") {
			if strings.HasPrefix(l, id) {
				line = l
			}
		}
		if !strings.Contains(line, fmt.Sprintf("uid %d (loopback, 127.0.0.1:", cred.Uid)) || strings.Contains(line, "runs as uid 0") != (id == bad) {
			t.Errorf("procs list line of %s = %q; want uploader uid %d (loopback...), and a warning only for the crafted image", id, line, cred.Uid)
		}
	}

	want := fmt.Sprintf("%d\t%d\t%d\t%d", cred.Uid, cred.Uid, cred.Uid, cred.Uid)
	if got := restoredUID(t, h, addr, good); got != want {
		t.Errorf("the user's own image, restored by root: Uid %q; want %q", got, want)
	}
	if got := restoredUID(t, h, addr, bad, "--trust-uploaded"); got != "0\t0\t0\t0" {
		t.Errorf("the crafted image with --trust-uploaded: Uid %q; want 0", got)
	}
}

// TestUploaderThreadCreds: the credentials of an image are its threads'
// too. An ordinary user uploads an image of its own process whose main
// thread is crafted to have root's credentials of its own (the process's
// stay the user's): procs-fetch and procs restore refuse it naming uid 0,
// and with --trust-uploaded the restored process runs as root, which is
// what the refusal kept from happening.
func TestUploaderThreadCreds(t *testing.T) {
	h, addr, work, cred, honest := uploadSetup(t)
	crafted := filepath.Join(work, "crafted")
	setCreds(t, honest, crafted, 0, 0, true)
	bad := curlUpload(t, cred, addr, crafted)
	who := fmt.Sprintf("uploaded by uid %d (loopback, 127.0.0.1:", cred.Uid)

	out, errs, code := h.run(t, nil, "procs-fetch", "-s", addr, bad)
	if code != 1 || out != "" || !strings.Contains(errs, "runs as uid 0") || !strings.Contains(errs, who) {
		t.Errorf("procs-fetch of an image whose thread says uid 0 = exit %d, %d bytes, %q; want 1, nothing, a refusal naming uid 0 and %q", code, len(out), errs, who)
	}
	_, errs, code = runDetached(t, h, "procs", "restore", bad, "-d", "-s", addr)
	if code != 125 || !strings.Contains(errs, "image "+bad+" runs as uid 0") || !strings.Contains(errs, "--trust-uploaded") {
		t.Errorf("procs restore of an image whose thread says uid 0 = exit %d, %q; want 125, naming uid 0 and --trust-uploaded", code, errs)
	}
	if got := restoredUID(t, h, addr, bad, "--trust-uploaded"); got != "0\t0\t0\t0" {
		t.Errorf("the crafted image with --trust-uploaded: main thread's Uid %q; want 0 (the thread's own credentials)", got)
	}
}

// TestTokenRules: a short token and a token file open to others are
// refused by procs-serve and by the clients; the scheme of the
// Authorization header is matched in any case.
func TestTokenRules(t *testing.T) {
	bin := serveBins(t)
	h := host{bin: bin, env: []string{"PROCS_SERVER=", "PROCS_TOKEN_FILE=", "PROCS_TOKEN="}}
	dir := t.TempDir()
	write := func(name, tok string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tok+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	short := write("short", "x", 0o600)
	open := write("open", "0123456789abcdef0123", 0o644)
	good := write("good", "0123456789abcdef0123", 0o600)
	state := filepath.Join(dir, "state")
	for _, tc := range []struct {
		file, want string
	}{{short, "shorter than 16 bytes"}, {open, "open to others (mode 0644)"}} {
		// Bounded: a procs-serve that took the token would serve on.
		cmd := h.command("procs-serve", "-l", freeAddr(t), "-d", state, "--token-file", tc.file)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		err := runTimeout(cmd, 5*time.Second)
		code, errs := cmd.ProcessState.ExitCode(), eb.String()
		if err != nil && cmd.ProcessState == nil {
			t.Fatal(err)
		}
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("procs-serve --token-file %s = exit %d, %q; want 1 and %q", filepath.Base(tc.file), code, errs, tc.want)
		}
		_, errs, code = h.run(t, nil, "procs", "list", "-s", "127.0.0.1:1", "--token-file", tc.file)
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("procs list --token-file %s = exit %d, %q; want 1 and %q", filepath.Base(tc.file), code, errs, tc.want)
		}
		_, errs, code = h.run(t, nil, "procs-fetch", "-s", "127.0.0.1:1", "--token-file", tc.file, "next")
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("procs-fetch --token-file %s = exit %d, %q; want 1 and %q", filepath.Base(tc.file), code, errs, tc.want)
		}
	}
	hs := h
	hs.env = append(hs.env, "PROCS_TOKEN=short")
	if _, errs, code := hs.run(t, nil, "procs", "list", "-s", "127.0.0.1:1"); code != 1 || !strings.Contains(errs, "shorter than 16 bytes") {
		t.Errorf("procs list with a short $PROCS_TOKEN = exit %d, %q; want 1, refused", code, errs)
	}

	addr := freeAddr(t)
	ht := h
	ht.env = append(ht.env, "PROCS_TOKEN_FILE="+good)
	startServer(t, h, ht, addr, state, "--token-file", good)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: "+scheme+" 0123456789abcdef0123", "http://"+addr+"/v1/images").Output()
		if err != nil || string(out) != "200" {
			t.Errorf("GET /v1/images with %q = %s, %v; want 200", scheme, out, err)
		}
	}
	var ee *exec.ExitError
	if out, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+addr+"/v1/images").Output(); string(out) != "401" && !errors.As(err, &ee) {
		t.Errorf("GET /v1/images without a token = %s, %v; want 401", out, err)
	}
}
