package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// LockName is the lock file of the state directory: a server holds an
// exclusive flock on it while it runs, and writes its PID in it.
const LockName = "procs-serve.lock"

// lockDir locks the state directory root (dir is its name, for
// messages), or says which process holds it.
func lockDir(root *os.Root, dir string) (*os.File, error) {
	f, err := root.OpenFile(LockName, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if errors.Is(err, syscall.EWOULDBLOCK) {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		who := "another procs-serve"
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			who += " (pid " + strconv.Itoa(pid) + ")"
		}
		return nil, fmt.Errorf("state directory %s is in use by %s", dir, who)
	}
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state directory %s: lock: %w", dir, err)
	}
	return f, nil
}

// queueWait is how long an upload beyond MaxUploads waits for a place
// before it is answered 503. MaxUploads of them may wait; more are
// answered at once. A waiting upload holds its connection, and nothing
// else: its body is not read.
const queueWait = 10 * time.Second

// startUpload takes one of the MaxUploads places of uploads, waiting for
// one in the queue if there is room there, or answers 503 with
// Retry-After and returns false.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request) bool {
	select {
	case s.uploads <- struct{}{}:
		return true
	default:
	}
	select {
	case s.queue <- struct{}{}:
		defer func() { <-s.queue }()
		t := time.NewTimer(queueWait)
		defer t.Stop()
		select {
		case s.uploads <- struct{}{}:
			return true
		case <-r.Context().Done():
			return false
		case <-t.C:
		case <-s.quit:
		}
	default:
	}
	s.logf("upload from %s: refused, %d uploads running", r.RemoteAddr, cap(s.uploads))
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	w.Header().Set("Connection", "close")
	httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("too many uploads at once (%d): try again later", cap(s.uploads)))
	return false
}

// endUpload gives the place back. When the last upload of a burst
// ends, the memory the uploads used goes back to the system a moment
// later (the Go runtime would keep much of it for minutes).
func (s *Server) endUpload() {
	<-s.uploads
	if len(s.uploads) > 0 {
		return
	}
	s.tidy.Lock()
	defer s.tidy.Unlock()
	if s.tidying {
		return
	}
	s.tidying = true
	time.AfterFunc(time.Second, func() {
		s.tidy.Lock()
		s.tidying = false
		s.tidy.Unlock()
		if len(s.uploads) == 0 {
			debug.FreeOSMemory()
		}
	})
}

// stallReader returns body cut (with an error) when it sends nothing for
// ReadTimeout: a stalled upload ends, and leaves nothing behind.
func (s *Server) stallReader(w http.ResponseWriter, body io.Reader) io.Reader {
	return &stallReader{r: body, rc: http.NewResponseController(w), timeout: s.cfg.ReadTimeout}
}

type stallReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
}

func (sr *stallReader) Read(p []byte) (int, error) {
	sr.rc.SetReadDeadline(time.Now().Add(sr.timeout))
	n, err := sr.r.Read(p)
	switch {
	case err == io.EOF:
		// The whole body is in: syncing a large image may take longer
		// than the timeout, and the connection's read that net/http
		// then keeps going must not time out meanwhile.
		sr.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("nothing received for %v", sr.timeout)
	}
	return n, err
}
