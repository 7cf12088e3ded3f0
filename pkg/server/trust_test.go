package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/api"
	"procs/pkg/server"
)

// credsImage returns a small image whose PROCESS record says creds.
func credsImage(t *testing.T, c format.Creds) []byte {
	return treeImage(t, format.Process{PID: 77, Creds: c})
}

// treeImage returns a small image of the PROCESS records procs, named
// "crafted".
func treeImage(t *testing.T, procs ...format.Process) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := format.NewWriter(&b, format.Info{Comm: "crafted", PID: procs[0].PID, Threads: 1, Processes: len(procs)}, format.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteJSON(format.TypeFiles, &format.FileTable{Files: []format.File{}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		p.Comm = "crafted"
		if err := w.WriteJSON(format.TypeProcess, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func uidCreds(uid, gid int, groups ...int) format.Creds {
	return format.Creds{UID: [4]int{uid, uid, uid, uid}, GID: [4]int{gid, gid, gid, gid}, Groups: groups}
}

// dialAs connects to addr from a socket created with fsuid uid: the
// kernel then says uid owns it, as if that user had connected.
func dialAs(t *testing.T, uid int, addr string) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res)
	go func() {
		runtime.LockOSThread() // the thread dies with its odd fsuid if not put back
		unix.Setfsuid(uid)
		c, err := net.Dial("tcp", addr)
		unix.Setfsuid(0)
		if got, _ := unix.SetfsuidRetUid(-1); got == 0 {
			runtime.UnlockOSThread()
		}
		ch <- res{c, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

// clientOver returns an HTTP client whose one connection is c.
func clientOver(c net.Conn) *http.Client {
	used := false
	return &http.Client{Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
		if used {
			return nil, fmt.Errorf("one connection only")
		}
		used = true
		return c, nil
	}}}
}

func post(t *testing.T, hc *http.Client, url, auth string, img []byte) (int, api.Entry, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/v1/images", bytes.NewReader(img))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Entry
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("POST answer %s: %v", b, err)
		}
	}
	return resp.StatusCode, e, string(b)
}

// fetchHeaders returns the trust headers of GET /v1/images/ID.
func fetchHeaders(t *testing.T, url, auth, id string) (uploader, exceeds string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/v1/images/"+id, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d; want 200", id, resp.StatusCode)
	}
	return resp.Header.Get(api.HeaderUploader), resp.Header.Get(api.HeaderExceeds)
}

// TestLoopbackUploader checks that an upload over loopback is recorded
// as the uid owning the client's socket, whatever the headers say, and
// that an image of more than that user may grant is marked.
func TestLoopbackUploader(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another uid")
	}
	ts := start(t, server.Config{})
	c := dialAs(t, 65534, ts.addr)
	hc := clientOver(c)
	code, e, body := post(t, hc, ts.url, "", credsImage(t, uidCreds(0, 0)))
	if code != 201 {
		t.Fatalf("POST as uid 65534 = %d %s; want 201", code, body)
	}
	if e.Uploader == nil || e.Uploader.UID != 65534 || e.Uploader.Auth != api.AuthLoopback || e.Uploader.Peer != c.LocalAddr().String() {
		t.Fatalf("uploader = %+v; want uid 65534, loopback, peer %s", e.Uploader, c.LocalAddr())
	}
	if !strings.Contains(e.Exceeds, "uid 0") || !strings.Contains(e.Exceeds, "gid 0") {
		t.Errorf("exceeds = %q; want uid 0 and gid 0", e.Exceeds)
	}
	up, ex := fetchHeaders(t, ts.url, "", e.ID)
	if !strings.Contains(up, "uid 65534 (loopback, 127.0.0.1:") || ex != e.Exceeds {
		t.Errorf("GET headers: uploader %q, exceeds %q; want uid 65534 (loopback, ...) and %q", up, ex, e.Exceeds)
	}
	// Its own credentials are fine; so is anything root uploads.
	nobody := server.NewIdentity(65534, -1, "", "")
	_, e, _ = post(t, clientOver(dialAs(t, 65534, ts.addr)), ts.url, "", credsImage(t, uidCreds(65534, nobody.GID)))
	if e.Exceeds != "" {
		t.Errorf("uid 65534's own image: exceeds = %q; want nothing", e.Exceeds)
	}
	_, e, _ = post(t, http.DefaultClient, ts.url, "", credsImage(t, uidCreds(0, 0)))
	if e.Uploader == nil || e.Uploader.UID != 0 || e.Exceeds != "" {
		t.Errorf("root's upload: uploader %+v, exceeds %q; want uid 0, nothing", e.Uploader, e.Exceeds)
	}
	for _, e := range list(t, ts.url, "") {
		if e.Uploader == nil || e.Creds == nil {
			t.Errorf("listed %s without uploader or creds: %+v", e.ID, e)
		}
	}
}

// TestUnknownPeerCannotWrite serves without ConnContext: nobody is
// identified, so uploads and deletions are refused, and a listing shows
// nothing.
func TestUnknownPeerCannotWrite(t *testing.T) {
	s, err := server.New(server.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.Handler()) // no ConnContext
	defer hs.Close()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"POST", "/v1/images", 403},
		{"DELETE", "/v1/images/aaaaaaaaaaaaaaaa", 403},
		{"GET", "/v1/images", 200},
	} {
		code, b := do(t, tc.method, hs.URL+tc.path, "", bytes.NewReader(credsImage(t, uidCreds(0, 0))))
		if code != tc.want {
			t.Errorf("%s %s = %d %s; want %d", tc.method, tc.path, code, b, tc.want)
		}
	}
}

// TestUnixUploader listens on a unix socket: the uploader is the peer's
// SO_PEERCRED.
func TestUnixUploader(t *testing.T) {
	s, err := server.New(server.Config{Dir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, "", "", time.Second) }()
	defer func() { cancel(); <-done; s.Close() }()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, "unix", sock)
	}}}
	code, e, body := post(t, hc, "http://unix", "", credsImage(t, uidCreds(os.Geteuid(), os.Getegid())))
	if code != 201 {
		t.Fatalf("POST = %d %s; want 201", code, body)
	}
	want := fmt.Sprintf("pid %d", os.Getpid())
	if e.Uploader == nil || e.Uploader.UID != os.Geteuid() || e.Uploader.GID != os.Getegid() || e.Uploader.Auth != api.AuthUnix || e.Uploader.Peer != want {
		t.Errorf("uploader = %+v; want uid %d gid %d, unix, %s", e.Uploader, os.Geteuid(), os.Getegid(), want)
	}
	if e.Exceeds != "" {
		t.Errorf("exceeds = %q; want nothing", e.Exceeds)
	}
}

// TestTokenUploader: with a token, the uploader is the token's owner,
// and the scheme is matched in any case.
func TestTokenUploader(t *testing.T) {
	const tok = "0123456789abcdef-token"
	owner := &api.Identity{UID: 1234, GID: 1234, Groups: []int{1234}}
	ts := start(t, server.Config{Token: tok, TokenOwner: owner})
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		code, e, body := post(t, http.DefaultClient, ts.url, scheme+" "+tok, credsImage(t, uidCreds(0, 1234)))
		if code != 201 {
			t.Fatalf("POST with %q = %d %s; want 201", scheme, code, body)
		}
		if e.Uploader == nil || e.Uploader.UID != 1234 || e.Uploader.Auth != api.AuthToken || e.Exceeds != "uid 0" {
			t.Errorf("uploader %+v, exceeds %q; want uid 1234 by token, uid 0", e.Uploader, e.Exceeds)
		}
	}
	if code, _, _ := post(t, http.DefaultClient, ts.url, "Basic "+tok, credsImage(t, uidCreds(0, 0))); code != 401 {
		t.Errorf("POST with Basic = %d; want 401", code)
	}
	// No owner: a token holder grants nothing.
	ts = start(t, server.Config{Token: tok})
	_, e, _ := post(t, http.DefaultClient, ts.url, "Bearer "+tok, credsImage(t, uidCreds(1234, 1234)))
	if e.Exceeds == "" {
		t.Errorf("token without owner: exceeds = %q; want uid 1234...", e.Exceeds)
	}
}

// procCreds makes each of cs the credentials of a PROCESS record whose
// threads have none of their own.
func procCreds(cs ...format.Creds) []format.ProcessCreds {
	var out []format.ProcessCreds
	for _, c := range cs {
		out = append(out, format.ProcessCreds{Creds: c})
	}
	return out
}

func TestExceeds(t *testing.T) {
	u := &api.Identity{UID: 1001, GID: 1001, Groups: []int{27, 1001}}
	root := &api.Identity{UID: 0}
	for _, tc := range []struct {
		name  string
		creds []format.ProcessCreds
		id    *api.Identity
		want  string
	}{
		{"own", procCreds(uidCreds(1001, 1001, 27)), u, ""},
		{"no process record", nil, u, ""},
		{"root", procCreds(uidCreds(0, 0)), u, "uid 0, gid 0"},
		{"root by root", procCreds(uidCreds(0, 0, 1, 2)), root, ""},
		{"saved uid", procCreds(format.Creds{UID: [4]int{1001, 1001, 0, 1001}, GID: [4]int{1001, 1001, 1001, 1001}}), u, "uid 0"},
		{"fs gid", procCreds(format.Creds{UID: [4]int{1001, 1001, 1001, 1001}, GID: [4]int{1001, 1001, 1001, 42}}), u, "gid 42"},
		{"group", procCreds(uidCreds(1001, 27, 4, 27)), u, "group 4"},
		{"unchanged -1", procCreds(uidCreds(-1, -1)), u, "uid -1, gid -1"},
		{"second record", procCreds(uidCreds(1001, 1001), uidCreds(0, 1001)), u, "uid 0"},
		{"thread", []format.ProcessCreds{{Creds: uidCreds(1001, 1001), Threads: []format.Creds{uidCreds(1001, 1001, 27), uidCreds(0, 1001)}}}, u, "uid 0"},
		{"thread of the second record", []format.ProcessCreds{{Creds: uidCreds(1001, 1001)}, {Creds: uidCreds(1001, 1001), Threads: []format.Creds{uidCreds(1001, 5, 6)}}}, u, "gid 5, group 6"},
		{"thread by root", []format.ProcessCreds{{Creds: uidCreds(1001, 1001), Threads: []format.Creds{uidCreds(0, 0)}}}, root, ""},
		{"nobody", procCreds(uidCreds(1001, 1001)), nil, "uid 1001, gid 1001"},
	} {
		if got := server.Exceeds(tc.creds, tc.id); got != tc.want {
			t.Errorf("%s: Exceeds(%v, %+v) = %q; want %q", tc.name, tc.creds, tc.id, got, tc.want)
		}
	}
}

// TestThreadCredsExceed: an ordinary user uploads an image whose process
// has the user's credentials and one of whose threads has root's (a
// restore gives each thread its own): the upload is marked as running as
// uid 0, in its entry and in the headers the clients check, whether the
// thread is the main one or another, in the root process or a child.
func TestThreadCredsExceed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another uid")
	}
	ts := start(t, server.Config{})
	nobody := server.NewIdentity(65534, -1, "", "")
	own := uidCreds(65534, nobody.GID)
	rootc := uidCreds(0, 0)
	for _, tc := range []struct {
		name  string
		procs []format.Process
	}{
		{"main thread", []format.Process{{PID: 77, Creds: own, Threads: []format.Thread{{TID: 77, Creds: &rootc}}}}},
		{"other thread", []format.Process{{PID: 77, Creds: own, Threads: []format.Thread{{TID: 77}, {TID: 78, Creds: &rootc}}}}},
		{"child's thread", []format.Process{
			{PID: 77, Creds: own, Threads: []format.Thread{{TID: 77}}},
			{PID: 79, PPID: 77, Creds: own, Threads: []format.Thread{{TID: 79}, {TID: 80, Creds: &rootc}}},
		}},
	} {
		code, e, body := post(t, clientOver(dialAs(t, 65534, ts.addr)), ts.url, "", treeImage(t, tc.procs...))
		if code != 201 {
			t.Fatalf("%s: POST as uid 65534 = %d %s; want 201", tc.name, code, body)
		}
		if !strings.Contains(e.Exceeds, "uid 0") || !strings.Contains(e.Exceeds, "gid 0") {
			t.Errorf("%s: exceeds = %q; want uid 0 and gid 0", tc.name, e.Exceeds)
		}
		if e.Creds == nil || e.Creds.UID[0] != 65534 {
			t.Errorf("%s: entry creds = %+v; want the root process's, uid 65534", tc.name, e.Creds)
		}
		if _, ex := fetchHeaders(t, ts.url, "", e.ID); ex != e.Exceeds {
			t.Errorf("%s: GET header %s = %q; want %q", tc.name, api.HeaderExceeds, ex, e.Exceeds)
		}
	}
	// The same tree with the user's own credentials everywhere is fine.
	code, e, body := post(t, clientOver(dialAs(t, 65534, ts.addr)), ts.url, "", treeImage(t,
		format.Process{PID: 77, Creds: own, Threads: []format.Thread{{TID: 77}, {TID: 78, Creds: &own}}}))
	if code != 201 || e.Exceeds != "" {
		t.Errorf("honest image: POST = %d %s, exceeds %q; want 201, nothing", code, body, e.Exceeds)
	}
}

// TestOnlyUploaderReads: an image holds a process's memory, so another
// user may neither list, fetch, claim, delete nor be handed it by
// /v1/next; its uploader and root may.
func TestOnlyUploaderReads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to connect as another uid")
	}
	ts := start(t, server.Config{})
	code, e, body := post(t, clientOver(dialAs(t, 65534, ts.addr)), ts.url, "", credsImage(t, uidCreds(65534, 65534)))
	if code != 201 {
		t.Fatalf("POST as uid 65534 = %d %s; want 201", code, body)
	}
	// as runs method path as uid, on a connection of its own.
	as := func(uid int, method, path string) (int, string) {
		req, _ := http.NewRequest(method, ts.url+path, nil)
		resp, err := clientOver(dialAs(t, uid, ts.addr)).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		method, path string
	}{
		{"GET", "/v1/images/" + e.ID},
		{"POST", "/v1/images/" + e.ID + "/claim"},
		{"DELETE", "/v1/images/" + e.ID},
	} {
		if code, b := as(1, tc.method, tc.path); code != 403 || !strings.Contains(b, "not yours") {
			t.Errorf("%s %s as uid 1 = %d %s; want 403, not yours", tc.method, tc.path, code, b)
		}
	}
	if code, b := as(1, "GET", "/v1/images"); code != 200 || strings.Contains(b, e.ID) {
		t.Errorf("GET /v1/images as uid 1 = %d %s; want 200 without %s", code, b, e.ID)
	}
	if code, b := as(1, "GET", "/v1/next?after=&timeout=0.2"); code != 204 {
		t.Errorf("GET /v1/next as uid 1 = %d %s; want 204 (nothing for it)", code, b)
	}
	// A waiter of another user is not handed a new arrival either.
	waited := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", ts.url+"/v1/next?timeout=1", nil)
		resp, err := clientOver(dialAs(t, 1, ts.addr)).Do(req)
		if err != nil {
			waited <- 0
			return
		}
		resp.Body.Close()
		waited <- resp.StatusCode
	}()
	// Once it waits (or has given up already, on a loaded machine).
	waitUntil(t, func() bool { return ts.Waiting() == 1 || len(waited) > 0 }, func() string { return "uid 1's GET /v1/next never came" })
	post(t, clientOver(dialAs(t, 65534, ts.addr)), ts.url, "", credsImage(t, uidCreds(65534, 65534)))
	if code := <-waited; code != 204 {
		t.Errorf("uid 1 waiting on /v1/next was handed uid 65534's image (%d); want 204", code)
	}
	if code, b := as(65534, "GET", "/v1/images"); code != 200 || !strings.Contains(b, e.ID) {
		t.Errorf("GET /v1/images as its uploader = %d %s; want it listed", code, b)
	}
	if code, _ := as(65534, "GET", "/v1/images/"+e.ID); code != 200 {
		t.Errorf("GET of its own image as its uploader = %d; want 200", code)
	}
	if code, _ := as(0, "DELETE", "/v1/images/"+e.ID); code != 204 {
		t.Errorf("DELETE as root = %d; want 204", code)
	}
}
