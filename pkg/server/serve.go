package server

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Serve answers HTTP requests on ln until ctx is cancelled, then shuts
// down gracefully: it stops accepting, wakes waiting "next" requests and
// lets requests in flight (uploads above all) finish for up to grace
// before cutting them. An upload cut that way leaves nothing behind; an
// upload answered 201 is already on disk. With certFile and keyFile it
// serves HTTPS.
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s.Handler(),
		ConnContext:       s.ConnContext,
		ReadHeaderTimeout: s.cfg.ReadTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// No read or write timeout on the whole request: bodies are
		// images of any size, and GET /v1/next waits as long as it
		// must. An upload's body is cut when it stalls for ReadTimeout
		// (stallReader).
		//
		// net/http's own complaints (a client's failed TLS handshake...)
		// go where the server's events go, with its prefix, or nowhere.
		ErrorLog: log.New(logWriter{s}, "", 0),
	}
	hs.RegisterOnShutdown(s.Shutdown)
	errc := make(chan error, 1)
	go func() {
		if certFile != "" || keyFile != "" {
			errc <- hs.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.logf("shutting down, waiting up to %v for requests in flight", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.logf("cutting requests still running after %v", grace)
		hs.Close()
		err = nil
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// IsLoopback reports whether a listener address only accepts connections
// from this host. An unspecified address (":7627", "0.0.0.0") is not.
func IsLoopback(addr net.Addr) bool {
	if _, ok := addr.(*net.UnixAddr); ok {
		return true
	}
	return IsLoopbackAddress(addr.String())
}

// IsLoopbackAddress reports whether host:port names only loopback
// addresses: a loopback IP, or a name that resolves to loopback IPs only.
// An empty host (every interface) is not.
func IsLoopbackAddress(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// SystemdListeners returns the sockets passed by systemd socket
// activation (LISTEN_PID, LISTEN_FDS, fds from 3), or nil when there are
// none. It unsets the variables so that children do not inherit them.
func SystemdListeners() ([]net.Listener, error) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 {
		return nil, nil
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	var lns []net.Listener
	for fd := 3; fd < 3+n; fd++ {
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "LISTEN_FD_"+strconv.Itoa(fd))
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("socket activation: fd %d: %v", fd, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// logWriter passes the lines of a log.Logger to the server's Log.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
