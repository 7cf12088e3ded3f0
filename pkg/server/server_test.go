package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"procs/pkg/api"
	"procs/pkg/server"
	"procs/pkg/server/servertest"
)

type testServer struct {
	*server.Server
	url    string
	addr   string
	dir    string
	cancel context.CancelFunc
	done   chan error
}

func start(t testing.TB, cfg server.Config) *testServer {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "state")
	}
	if cfg.Verify == nil {
		cfg.Verify = server.VerifyImage
	}
	cfg.Log = t.Logf
	s, err := server.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: s, url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), dir: cfg.Dir, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- s.Serve(ctx, ln, "", "", 5*time.Second) }()
	t.Cleanup(func() {
		ts.stop(t)
		s.Close()
	})
	return ts
}

func (ts *testServer) stop(t testing.TB) {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	ts.cancel = nil
	if err := <-ts.done; err != nil {
		t.Errorf("Serve() = %v; want nil", err)
	}
}

func do(t *testing.T, method, url, token string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, b
}

func upload(t *testing.T, url, token string, img []byte) string {
	t.Helper()
	code, b := do(t, "POST", url+"/v1/images", token, bytes.NewReader(img))
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/images = %d %s; want 201", code, b)
	}
	var e api.Entry
	if err := json.Unmarshal(b, &e); err != nil || !api.ValidID(e.ID) {
		t.Fatalf("POST /v1/images answer %s: bad id (%v)", b, err)
	}
	return e.ID
}

func list(t *testing.T, url, token string) []api.Entry {
	t.Helper()
	code, b := do(t, "GET", url+"/v1/images", token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/images = %d %s; want 200", code, b)
	}
	var es []api.Entry
	if err := json.Unmarshal(b, &es); err != nil {
		t.Fatalf("GET /v1/images: %v", err)
	}
	return es
}

// files lists the state directory.
func files(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if de.Name() != server.LockName {
			names = append(names, de.Name())
		}
	}
	return names
}

// waitEmpty waits until the state directory holds nothing.
func waitEmpty(t *testing.T, dir string) {
	t.Helper()
	waitUntil(t, func() bool { return len(files(t, dir)) == 0 }, func() string {
		return fmt.Sprintf("state directory = %v; want empty", files(t, dir))
	})
}

// waitUntil waits up to a minute for cond (a loaded machine may be
// slow), then fails with what, saying what was wanted and what there is.
func waitUntil(t testing.TB, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitWaiting waits until n requests wait for the next image on ts.
func waitWaiting(t testing.TB, ts *testServer, n int) {
	t.Helper()
	waitUntil(t, func() bool { return ts.Waiting() == n }, func() string {
		return fmt.Sprintf("%d requests wait for the next image; want %d", ts.Waiting(), n)
	})
}

func TestUploadListFetchDelete(t *testing.T) {
	ts := start(t, server.Config{})
	img := servertest.Image(server.Meta{Comm: "sleep", PID: 4242, Host: "a"}, 300000, 1)
	id := upload(t, ts.url, "", img)

	es := list(t, ts.url, "")
	if len(es) != 1 {
		t.Fatalf("list = %v; want 1 entry", es)
	}
	e := es[0]
	if e.ID != id || e.Comm != "sleep" || e.PID != 4242 || e.Host != "a" || e.Size != int64(len(img)) || e.Origin != "127.0.0.1" || e.Arrived.IsZero() {
		t.Errorf("list = %+v; want id %s sleep 4242 host a size %d origin 127.0.0.1", e, id, len(img))
	}

	code, b := do(t, "GET", ts.url+"/v1/images/"+id, "", nil)
	if code != 200 || !bytes.Equal(b, img) {
		t.Errorf("GET /v1/images/%s = %d, %d bytes; want 200 and the image (%d bytes)", id, code, len(b), len(img))
	}
	if code, _ := do(t, "DELETE", ts.url+"/v1/images/"+id, "", nil); code != http.StatusNoContent {
		t.Errorf("DELETE = %d; want 204", code)
	}
	if code, _ := do(t, "DELETE", ts.url+"/v1/images/"+id, "", nil); code != http.StatusNotFound {
		t.Errorf("second DELETE = %d; want 404", code)
	}
	if code, _ := do(t, "GET", ts.url+"/v1/images/"+id, "", nil); code != http.StatusNotFound {
		t.Errorf("GET after DELETE = %d; want 404", code)
	}
	if es := list(t, ts.url, ""); len(es) != 0 {
		t.Errorf("list after delete = %v; want empty", es)
	}
	waitEmpty(t, ts.dir)
}

func TestOrigin(t *testing.T) {
	ts := start(t, server.Config{})
	for _, tc := range []struct{ header, want string }{
		{"hosta.example", "hosta.example"},
		{"bad host", "127.0.0.1"},
		{"", "127.0.0.1"},
	} {
		req, _ := http.NewRequest("POST", ts.url+"/v1/images", bytes.NewReader(servertest.Image(server.Meta{}, 10, 1)))
		req.Header.Set("X-Procs-Origin", tc.header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e api.Entry
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if e.Origin != tc.want {
			t.Errorf("upload with X-Procs-Origin %q: origin = %q; want %q", tc.header, e.Origin, tc.want)
		}
	}
}

func TestAuth(t *testing.T) {
	ts := start(t, server.Config{Token: "s3cret"})
	img := servertest.Image(server.Meta{Comm: "x"}, 100, 2)
	for _, tc := range []struct {
		name, method, path, header string
		want                       int
	}{
		{"no token list", "GET", "/v1/images", "", 401},
		{"wrong token list", "GET", "/v1/images", "Bearer s3cre", 401},
		{"basic scheme", "GET", "/v1/images", "Basic s3cret", 401},
		{"no token upload", "POST", "/v1/images", "", 401},
		{"no token next", "GET", "/v1/next?timeout=0", "", 401},
		{"no token fetch", "GET", "/v1/images/aaaaaaaaaaaaaaaa", "", 401},
		{"right token", "GET", "/v1/images", "Bearer s3cret", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.url+tc.path, bytes.NewReader(img))
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s %s with %q = %d; want %d", tc.method, tc.path, tc.header, resp.StatusCode, tc.want)
			}
		})
	}
	if es := list(t, ts.url, "s3cret"); len(es) != 0 {
		t.Errorf("list = %v; want nothing stored by unauthorized uploads", es)
	}
	upload(t, ts.url, "s3cret", img)
}

func TestIDsArePaths(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	secret := filepath.Join(base, "aaaaaaaaaaaaaaaa.img")
	os.WriteFile(secret, []byte("secret"), 0o600)
	os.WriteFile(filepath.Join(base, "aaaaaaaaaaaaaaaa.json"), []byte(`{"comm":"x"}`), 0o600)
	ts := start(t, server.Config{Dir: dir})
	id := upload(t, ts.url, "", servertest.Image(server.Meta{}, 10, 3))
	for _, p := range []string{
		"..%2faaaaaaaaaaaaaaaa",
		"..%2F..%2Fetc%2Fpasswd",
		"%2e%2e",
		id + ".img",
		id + "%00",
		strings.ToUpper(id),
		id[:15],
		id + "a",
		".tmp-" + id,
		"next",
	} {
		for _, m := range []string{"GET", "DELETE"} {
			code, b := do(t, m, ts.url+"/v1/images/"+p, "", nil)
			if code != http.StatusNotFound {
				t.Errorf("%s /v1/images/%s = %d %s; want 404", m, p, code, b)
			}
		}
	}
	if code, _ := do(t, "GET", ts.url+"/v1/next?after=..%2faaaaaaaaaaaaaaaa", "", nil); code != http.StatusNotFound {
		t.Errorf("GET /v1/next?after=../aaaaaaaaaaaaaaaa = %d; want 404", code)
	}
	if _, err := os.Stat(secret); err != nil {
		t.Errorf("file outside the state directory: %v", err)
	}
	if es := list(t, ts.url, ""); len(es) != 1 || es[0].ID != id {
		t.Errorf("list = %v; want only %s", es, id)
	}
}

func TestCorruptUploadRejected(t *testing.T) {
	ts := start(t, server.Config{})
	good := servertest.Image(server.Meta{Comm: "c"}, 100000, 4)
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		return b
	}
	for _, tc := range []struct {
		name string
		img  []byte
	}{
		{"empty", nil},
		{"garbage", []byte("hello, world\n")},
		{"truncated", good[:len(good)/2]},
		{"no end record", good[:len(good)-4]},
		{"flipped payload byte", flip(5000)},
		{"flipped checksum byte", flip(len(good) - 10)},
		{"trailing data", append(bytes.Clone(good), 'x')},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, b := do(t, "POST", ts.url+"/v1/images", "", bytes.NewReader(tc.img))
			if code != http.StatusBadRequest || !bytes.Contains(b, []byte(`"error"`)) {
				t.Errorf("POST %s = %d %s; want 400 with an error", tc.name, code, b)
			}
			if es := list(t, ts.url, ""); len(es) != 0 {
				t.Errorf("list = %v; want empty", es)
			}
			waitEmpty(t, ts.dir)
		})
	}
}

func TestMaxSize(t *testing.T) {
	ts := start(t, server.Config{MaxSize: 10000})
	code, b := do(t, "POST", ts.url+"/v1/images", "", bytes.NewReader(servertest.Image(server.Meta{}, 20000, 5)))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 20000 bytes with limit 10000 = %d %s; want 413", code, b)
	}
	waitEmpty(t, ts.dir)
	upload(t, ts.url, "", servertest.Image(server.Meta{}, 5000, 5))
}

// TestCutUpload closes a raw connection in the middle of an upload.
func TestCutUpload(t *testing.T) {
	ts := start(t, server.Config{})
	img := servertest.Image(server.Meta{Comm: "cut"}, 1<<20, 6)
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprint("chunked=", chunked), func(t *testing.T) {
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Fatal(err)
			}
			w := bufio.NewWriter(c)
			fmt.Fprintf(w, "POST /v1/images HTTP/1.1\r\nHost: x\r\n")
			half := img[:len(img)/2]
			if chunked {
				fmt.Fprintf(w, "Transfer-Encoding: chunked\r\n\r\n%x\r\n", len(half))
			} else {
				fmt.Fprintf(w, "Content-Length: %d\r\n\r\n", len(img))
			}
			w.Write(half)
			w.Flush()
			// Let the server start storing it, then cut.
			deadline := time.Now().Add(5 * time.Second)
			for len(files(t, ts.dir)) == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			c.Close()
			waitEmpty(t, ts.dir)
			if es := list(t, ts.url, ""); len(es) != 0 {
				t.Errorf("list = %v; want empty", es)
			}
		})
	}
}

func TestConcurrentUploads(t *testing.T) {
	ts := start(t, server.Config{MaxUploads: 10})
	const n = 10
	imgs := make([][]byte, n)
	ids := make([]string, n)
	for i := range imgs {
		imgs[i] = servertest.Image(server.Meta{Comm: fmt.Sprint("p", i), PID: 100 + i}, 1<<20+i*1000, byte(i))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(ts.url+"/v1/images", "application/octet-stream", bytes.NewReader(imgs[i]))
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var e api.Entry
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 201 {
				errs[i] = fmt.Errorf("status %d, %v", resp.StatusCode, err)
			}
			ids[i] = e.ID
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	es := list(t, ts.url, "")
	if len(es) != n {
		t.Fatalf("list has %d entries; want %d", len(es), n)
	}
	for i, id := range ids {
		code, b := do(t, "GET", ts.url+"/v1/images/"+id, "", nil)
		if code != 200 || !bytes.Equal(b, imgs[i]) {
			t.Errorf("GET %s (upload %d) = %d, %d bytes; want the image intact", id, i, code, len(b))
		}
	}
}

func TestNext(t *testing.T) {
	ts := start(t, server.Config{})
	old := upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "old"}, 10, 7))

	// Without after: only an image arriving after the request counts.
	got := make(chan api.Entry, 1)
	go func() {
		resp, err := http.Get(ts.url + "/v1/next")
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		defer resp.Body.Close()
		var e api.Entry
		json.NewDecoder(resp.Body).Decode(&e)
		got <- e
	}()
	waitWaiting(t, ts, 1) // it waits: the old image does not count
	select {
	case e := <-got:
		t.Fatalf("GET /v1/next returned %+v before any new image", e)
	default:
	}
	id := upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "new"}, 10, 8))
	select {
	case e := <-got:
		if e.ID != id || e.Comm != "new" {
			t.Errorf("GET /v1/next = %+v; want %s", e, id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("GET /v1/next did not return after an upload")
	}

	// With after: the one after, at once.
	code, b := do(t, "GET", ts.url+"/v1/next?after="+old, "", nil)
	if code != 200 || !strings.Contains(string(b), id) {
		t.Errorf("GET /v1/next?after=%s = %d %s; want %s", old, code, b, id)
	}
	// Timeout: nothing after the newest.
	code, b = do(t, "GET", ts.url+"/v1/next?after="+id+"&timeout=0.1", "", nil)
	if code != http.StatusNoContent {
		t.Errorf("GET /v1/next?after=newest&timeout=0.1 = %d %s; want 204", code, b)
	}
	code, _ = do(t, "GET", ts.url+"/v1/next?timeout=x", "", nil)
	if code != http.StatusBadRequest {
		t.Errorf("GET /v1/next?timeout=x = %d; want 400", code)
	}
}

// TestGracefulShutdown shuts the server down in the middle of an upload
// and of a wait for the next image: the upload completes and stays, the
// wait ends with 503.
func TestGracefulShutdown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ts := start(t, server.Config{Dir: dir})
	img := servertest.Image(server.Meta{Comm: "late"}, 1<<20, 9)

	nextCode := make(chan int, 1)
	go func() {
		resp, err := http.Get(ts.url + "/v1/next")
		if err != nil {
			nextCode <- 0
			return
		}
		resp.Body.Close()
		nextCode <- resp.StatusCode
	}()

	pr, pw := io.Pipe()
	type result struct {
		code int
		body []byte
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Post(ts.url+"/v1/images", "application/octet-stream", pr)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{code: resp.StatusCode, body: b}
	}()
	pw.Write(img[:len(img)/2])
	// The shutdown must find both requests in the server's hands, not
	// only sent: a connection it has not accepted yet is refused.
	waitWaiting(t, ts, 1)
	waitUntil(t, func() bool { n, _ := ts.Uploads(); return n == 1 }, func() string {
		n, q := ts.Uploads()
		return fmt.Sprintf("%d uploads run, %d wait; want 1 running", n, q)
	})
	stopped := make(chan struct{})
	go func() { ts.stop(t); close(stopped) }()
	// The server stops listening before it wakes the waiter.
	if code := <-nextCode; code != http.StatusServiceUnavailable {
		t.Errorf("GET /v1/next during shutdown = %d; want 503", code)
	}
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Errorf("server still accepts connections while shutting down")
	}
	pw.Write(img[len(img)/2:])
	pw.Close()
	r := <-res
	if r.err != nil || r.code != http.StatusCreated {
		t.Fatalf("upload during shutdown = %d %s %v; want 201", r.code, r.body, r.err)
	}
	<-stopped
	ts.Server.Close()

	// A new server on the same directory has it.
	s2, err := server.New(server.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s2.Serve(ctx, ln, "", "", time.Second)
	es := list(t, "http://"+ln.Addr().String(), "")
	if len(es) != 1 || es[0].Comm != "late" || es[0].Size != int64(len(img)) {
		t.Errorf("list after restart = %+v; want the image uploaded during shutdown", es)
	}
}

func TestLeftoversRemoved(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".tmp-aaaaaaaaaaaaaaaa.img", ".tmp-aaaaaaaaaaaaaaaa.json", "bbbbbbbbbbbbbbbb.json"} {
		os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600)
	}
	ts := start(t, server.Config{Dir: dir})
	if f := files(t, dir); len(f) != 0 {
		t.Errorf("state directory after start = %v; want empty", f)
	}
	if es := list(t, ts.url, ""); len(es) != 0 {
		t.Errorf("list = %v; want empty", es)
	}
}

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:7627", true},
		{"127.5.0.1:7627", true},
		{"[::1]:7627", true},
		{"0.0.0.0:7627", false},
		{"[::]:7627", false},
		{"10.1.2.3:7627", false},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := server.IsLoopback(a); got != tc.want {
			t.Errorf("IsLoopback(%s) = %v; want %v", tc.addr, got, tc.want)
		}
		if got := server.IsLoopbackAddress(tc.addr); got != tc.want {
			t.Errorf("IsLoopbackAddress(%s) = %v; want %v", tc.addr, got, tc.want)
		}
	}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"localhost:7627", true},
		{":7627", false},
		{"127.0.0.1", false}, // no port: not an address to listen on
	} {
		if got := server.IsLoopbackAddress(tc.addr); got != tc.want {
			t.Errorf("IsLoopbackAddress(%s) = %v; want %v", tc.addr, got, tc.want)
		}
	}
}
