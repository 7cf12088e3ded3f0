package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"procs/pkg/api"
	"procs/pkg/server"
	"procs/pkg/server/servertest"
)

// claimReq sends POST /v1/images/ID/claim and returns the status, the
// body and the claim token.
func claimReq(t *testing.T, url, id, query string) (int, []byte, string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/images/"+id+"/claim"+query, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header.Get(api.HeaderClaim)
}

// deleteReq sends DELETE path with a claim token (if not empty).
func deleteReq(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("DELETE", url, nil)
	if token != "" {
		req.Header.Set(api.HeaderClaim, token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestClaimOnce: of receivers claiming one image at once, exactly one
// gets it; the others are told it is taken. The claim is committed by a
// DELETE with its token, which nobody else's DELETE can do.
func TestClaimOnce(t *testing.T) {
	ts := start(t, server.Config{})
	img := servertest.Image(server.Meta{Comm: "once"}, 1<<20, 1)
	id := upload(t, ts.url, "", img)
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([][]byte, n)
	tokens := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], bodies[i], tokens[i] = claimReq(t, ts.url, id, "")
		}()
	}
	wg.Wait()
	winner := -1
	for i := range n {
		switch codes[i] {
		case http.StatusOK:
			if winner >= 0 {
				t.Fatalf("claims %d and %d both got image %s", winner, i, id)
			}
			winner = i
			if !bytes.Equal(bodies[i], img) || len(tokens[i]) != 32 {
				t.Errorf("claim answered %d bytes, token %q; want the image and a token", len(bodies[i]), tokens[i])
			}
		case http.StatusConflict:
			if !strings.Contains(string(bodies[i]), "already taken") {
				t.Errorf("losing claim = %s; want \"already taken\"", bodies[i])
			}
		default:
			t.Errorf("claim = %d %s; want 200 or 409", codes[i], bodies[i])
		}
	}
	if winner < 0 {
		t.Fatal("no claim got the image")
	}
	es := list(t, ts.url, "")
	if len(es) != 1 || !es[0].Claimed {
		t.Errorf("list = %+v; want the image, claimed", es)
	}
	if code, b := deleteReq(t, ts.url+"/v1/images/"+id, ""); code != http.StatusConflict {
		t.Errorf("DELETE of a claimed image without its token = %d %s; want 409", code, b)
	}
	if code, b := deleteReq(t, ts.url+"/v1/images/"+id, strings.Repeat("0", 32)); code != http.StatusConflict {
		t.Errorf("DELETE with another token = %d %s; want 409", code, b)
	}
	if code, b := deleteReq(t, ts.url+"/v1/images/"+id, tokens[winner]); code != http.StatusNoContent {
		t.Fatalf("DELETE with the claim's token = %d %s; want 204", code, b)
	}
	if es := list(t, ts.url, ""); len(es) != 0 {
		t.Errorf("list after the commit = %+v; want empty", es)
	}
	waitEmpty(t, ts.dir)
}

// TestClaimRelease: a released claim, and one whose hold expires, give
// the image back: it can be claimed again, and /v1/next offers it to a
// waiter again. A commit with a token that no longer holds deletes
// nothing.
func TestClaimRelease(t *testing.T) {
	ts := start(t, server.Config{})
	before := upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "before"}, 4096, 1))
	id := upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "back"}, 4096, 2))
	code, _, tok := claimReq(t, ts.url, id, "")
	if code != 200 {
		t.Fatalf("claim = %d", code)
	}
	// A waiter for what came after "before" is not offered the claimed
	// image; it is once the claim is released.
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(ts.url + "/v1/next?timeout=10&after=" + before)
		if err != nil {
			got <- err.Error()
			return
		}
		var e api.Entry
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		got <- e.Comm
	}()
	select {
	case c := <-got:
		t.Fatalf("next while the image is claimed = %q; want to wait", c)
	case <-time.After(300 * time.Millisecond):
	}
	if code, b := deleteReq(t, ts.url+"/v1/images/"+id+"/claim", tok); code != http.StatusNoContent {
		t.Fatalf("release = %d %s; want 204", code, b)
	}
	if c := <-got; c != "back" {
		t.Errorf("next after the release = %q; want back", c)
	}
	if code, b := deleteReq(t, ts.url+"/v1/images/"+id, tok); code != http.StatusConflict {
		t.Errorf("commit of a released claim = %d %s; want 409", code, b)
	}
	code, _, tok = claimReq(t, ts.url, id, "?hold=0.2")
	if code != 200 {
		t.Fatalf("claim after release = %d; want 200", code)
	}
	time.Sleep(500 * time.Millisecond)
	if es := list(t, ts.url, ""); len(es) != 2 || es[1].ID != id || es[1].Claimed {
		t.Errorf("list after the hold = %+v; want %s, not claimed", es, id)
	}
	if code, b := deleteReq(t, ts.url+"/v1/images/"+id, tok); code != http.StatusConflict {
		t.Errorf("commit of an expired claim = %d %s; want 409", code, b)
	}
	if code, _ := do(t, "POST", ts.url+"/v1/images/"+id+"/claim?hold=7200", "", nil); code != http.StatusBadRequest {
		t.Errorf("claim with a hold of 2 h = %d; want 400", code)
	}
}

// TestNextManyWaiters: each of many waiters of /v1/next is handed the
// entry that arrives after the one it names, the same one for all that
// name the same.
func TestNextManyWaiters(t *testing.T) {
	ts := start(t, server.Config{})
	first := upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "first"}, 4096, 3))
	const n = 200
	var wg sync.WaitGroup
	got := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := "?timeout=20"
			if i%2 == 1 {
				q += "&after=" + first
			}
			resp, err := http.Get(ts.url + "/v1/next" + q)
			if err != nil {
				got[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			var e api.Entry
			json.NewDecoder(resp.Body).Decode(&e)
			got[i] = e.Comm
		}()
	}
	waitWaiting(t, ts, n)
	upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "second"}, 4096, 4))
	upload(t, ts.url, "", servertest.Image(server.Meta{Comm: "third"}, 4096, 5))
	wg.Wait()
	for i, c := range got {
		if c != "second" {
			t.Errorf("waiter %d got %q; want second", i, c)
		}
	}
}

// TestUploadLimit: uploads beyond MaxUploads wait for a place, as many
// as MaxUploads of them; more are answered 503 with Retry-After at once.
// A body that stalls for ReadTimeout is cut and leaves nothing; then the
// server takes uploads again.
func TestUploadLimit(t *testing.T) {
	ts := start(t, server.Config{MaxUploads: 2, ReadTimeout: time.Second})
	img := servertest.Image(server.Meta{Comm: "stall"}, 1<<20, 6)
	var conns []net.Conn
	for range 4 { // two run, two wait
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprintf(c, "POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(img))
		c.Write(img[:len(img)/2])
	}
	waitUntil(t, func() bool { n, q := ts.Uploads(); return n == 2 && q == 2 }, func() string {
		n, q := ts.Uploads()
		return fmt.Sprintf("%d uploads run, %d wait; want 2 and 2", n, q)
	})
	start := time.Now()
	resp, err := http.Post(ts.url+"/v1/images", "application/octet-stream", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("fifth upload = %d (Retry-After %q) %s; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("the 503 took %v; want it at once", d)
	}
	// The stalled ones are cut after a second of silence, the waiting
	// ones once they had their place and stalled in it.
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, " 400 ") {
			t.Errorf("stalled upload: answer %q, %v; want 400", line, err)
		}
		c.Close()
	}
	waitEmpty(t, ts.dir)
	upload(t, ts.url, "", img)
}

// TestLockedDir: a second server on a state directory in use refuses to
// start and names the first's PID.
func TestLockedDir(t *testing.T) {
	ts := start(t, server.Config{})
	_, err := server.New(server.Config{Dir: ts.dir})
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("New on a directory in use = %v; want it refused, naming pid %d", err, os.Getpid())
	}
	ts.stop(t)
	ts.Close()
	s, err := server.New(server.Config{Dir: ts.dir})
	if err != nil {
		t.Fatalf("New once the first closed = %v", err)
	}
	s.Close()
}
