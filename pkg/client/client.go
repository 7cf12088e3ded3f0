// Package client talks to procs-serve: upload, list, fetch, delete and
// wait for images. It is used by procs-fetch and procs. What it shares
// with the server (ids, paths, headers, the entry) is in pkg/api: it
// never imports pkg/server.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"procs/pkg/api"
	"procs/pkg/cli"
	"procs/pkg/safetext"
)

// ErrNotFound matches (errors.Is) the error for an id the server does not
// hold.
var ErrNotFound = errors.New("no such image")

// ErrTaken matches (errors.Is) the error for an image that another
// receiver has claimed.
var ErrTaken = errors.New("image already taken")

// Error is an answer of the server other than success.
type Error struct {
	Status int    // HTTP status
	Msg    string // the server's message
}

func (e *Error) Error() string { return e.Msg }

// Is makes a 404 match ErrNotFound and a 409 ErrTaken.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound ||
		target == ErrTaken && e.Status == http.StatusConflict
}

// Client talks to one server.
type Client struct {
	base   string // "http://host:port", no trailing slash
	name   string // the server, for messages: base, or unix:PATH
	token  string
	hc     *http.Client
	Origin string // sent as api.HeaderOrigin with uploads; os.Hostname() by default
	// TrustUploaded lets Fetch return an image whose credentials exceed
	// what its uploader could grant (see UntrustedError).
	TrustUploaded bool
}

// UnixPath returns the socket path of a server given as unix:PATH, or as
// a path starting with / or ., and whether it is one.
func UnixPath(s string) (string, bool) {
	if p, ok := strings.CutPrefix(s, "unix:"); ok {
		return p, true
	}
	return s, strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".")
}

// ParseServer turns host, host:port, [v6addr]:port, or an http:// or
// https:// URL into the base URL of a server; the port defaults to
// api.DefaultPort.
func ParseServer(s string) (string, error) {
	scheme := "http"
	if rest, ok := strings.CutPrefix(s, "https://"); ok {
		scheme, s = "https", rest
	} else if rest, ok := strings.CutPrefix(s, "http://"); ok {
		s = rest
	}
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return "", errors.New("empty server address")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: a bare host or a bare IPv6 address, its brackets
		// both there or both not.
		if strings.HasPrefix(s, "[") != strings.HasSuffix(s, "]") {
			return "", fmt.Errorf("bad server address %q", s)
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), strconv.Itoa(api.DefaultPort)
	}
	if host == "" || strings.ContainsAny(host, "/?#@ []") {
		return "", fmt.Errorf("bad server address %q", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("bad port in server address %q", s)
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// ServerAddr picks the server: flag when not empty, else $PROCS_SERVER,
// else the local server (api.DefaultAddr).
func ServerAddr(flag string) string {
	if flag != "" {
		return flag
	}
	if s := os.Getenv("PROCS_SERVER"); s != "" {
		return s
	}
	return api.DefaultAddr
}

// MinTokenLen is the length, in bytes, of the shortest token accepted.
const MinTokenLen = 16

// LoadToken reads the token: from tokenFile when not empty (first line,
// surrounding blanks removed), else from $PROCS_TOKEN_FILE, else
// $PROCS_TOKEN. No token is "".
func LoadToken(tokenFile string) (string, error) {
	if tokenFile == "" {
		tokenFile = os.Getenv("PROCS_TOKEN_FILE")
	}
	if tokenFile == "" {
		tok := os.Getenv("PROCS_TOKEN")
		if tok != "" && len(tok) < MinTokenLen {
			return "", fmt.Errorf("the token in $PROCS_TOKEN is shorter than %d bytes", MinTokenLen)
		}
		return tok, nil
	}
	return ReadTokenFile(tokenFile)
}

// ReadTokenFile returns the first line of a token file, without
// surrounding blanks (see ReadTokenFileOwner).
func ReadTokenFile(name string) (string, error) {
	tok, _, err := ReadTokenFileOwner(name)
	return tok, err
}

// ReadTokenFileOwner returns the first line of a token file, without
// surrounding blanks, and the uid that owns the file. It refuses a
// file that its owner's group or others may read or write, and a token
// shorter than MinTokenLen bytes.
func ReadTokenFileOwner(name string) (string, int, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", -1, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", -1, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular() || !ok:
		return "", -1, fmt.Errorf("token file %s is not a regular file", name)
	case fi.Mode().Perm()&0o077 != 0:
		return "", -1, cli.WithHint(fmt.Errorf("token file %s is open to others (mode %04o): refusing it", name, fi.Mode().Perm()),
			"make it readable by its owner only: chmod 600 "+name)
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", -1, err
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "":
		return "", -1, fmt.Errorf("token file %s is empty", name)
	case len(tok) < MinTokenLen:
		return "", -1, cli.WithHint(fmt.Errorf("the token in %s is shorter than %d bytes: refusing it", name, MinTokenLen),
			"make one with: (umask 077; head -c 32 /dev/urandom | base64 > "+name+")")
	}
	return tok, int(st.Uid), nil
}

// New returns a client of server (see ParseServer) that presents token
// when not empty. HTTPS certificates are checked against the system's
// roots (SSL_CERT_FILE and SSL_CERT_DIR are honoured).
func New(server, token string) (*Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	base, name := "", ""
	if path, ok := UnixPath(server); ok {
		if path == "" {
			return nil, errors.New("empty socket path in server address")
		}
		base, name = "http://localhost", "unix:"+path
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", path)
		}
	} else {
		var err error
		if base, err = ParseServer(server); err != nil {
			return nil, err
		}
		name = base
	}
	// Images are large: a big read buffer means few system calls per
	// MiB. Bodies go out in large writes that pass a small write buffer
	// by (a large one would have each chunk copied into it after its
	// chunk header).
	tr.WriteBufferSize = 64 << 10
	tr.ReadBufferSize = bufSize
	// A lazy restore keeps several range requests in flight beside
	// its stream: their connections are kept for the next ones.
	tr.MaxIdleConnsPerHost = 8
	host, _ := os.Hostname()
	return &Client{
		base:   base,
		name:   name,
		token:  token,
		hc:     &http.Client{Transport: tr},
		Origin: host,
	}, nil
}

// Server returns the base URL of the server.
func (c *Client) Server() string { return c.name }

func (c *Client) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", api.BearerScheme+" "+c.token)
	}
	return req, nil
}

// do sends req and turns any status but want into an *Error.
func (c *Client) do(req *http.Request, want int) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if resp.StatusCode == want {
		return resp, nil
	}
	defer resp.Body.Close()
	var e api.ErrorBody
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := resp.Status
	switch {
	case json.Unmarshal(b, &e) == nil && e.Error != "":
		msg = safetext.Clean(e.Error, 1024) // text from the server
	case resp.StatusCode == http.StatusBadRequest && bytes.Contains(b, []byte("HTTP request to an HTTPS server")):
		// net/http's answer to plain HTTP on a TLS port.
		msg = "the server speaks HTTPS: give it as https://" + strings.TrimPrefix(c.base, "http://")
	}
	return nil, &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s: %s", c.name, msg)}
}

// bufSize is the size of the buffers that images go through.
const bufSize = 1 << 20

// bigCopy is a request body that the transport copies with io.Copy: its
// WriteTo moves the image in pieces of up to bufSize, so that it goes out
// in large chunks rather than in the 32 KiB pieces of io.Copy's own
// buffer.
type bigCopy struct{ r io.Reader }

func (b bigCopy) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b bigCopy) Close() error               { return nil }

func (b bigCopy) WriteTo(w io.Writer) (int64, error) {
	if st, ok := b.r.(*Stream); ok {
		return st.WriteTo(w)
	}
	return io.CopyBuffer(w, struct{ io.Reader }{b.r}, make([]byte, bufSize))
}

// Upload sends one image read from r and returns its entry once the server
// has confirmed (201 Created) that it holds the whole verified image on
// disk. Any error means the server does not keep it. A regular file is
// sent with its length; anything else in chunks.
func (c *Client) Upload(ctx context.Context, r io.Reader) (api.Entry, error) {
	size := int64(-1)
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := f.Seek(0, io.SeekCurrent); err == nil && off <= fi.Size() {
				size = fi.Size() - off
			}
		}
	}
	req, err := c.request(ctx, http.MethodPost, api.PathImages, bigCopy{r})
	if err != nil {
		return api.Entry{}, err
	}
	req.ContentLength = size // -1: unknown, chunked, and no probe of the body
	req.Header.Set("Content-Type", "application/octet-stream")
	if c.Origin != "" {
		req.Header.Set(api.HeaderOrigin, c.Origin)
	}
	resp, err := c.do(req, http.StatusCreated)
	if err != nil {
		return api.Entry{}, err
	}
	defer resp.Body.Close()
	var e api.Entry
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.ID == "" {
		return api.Entry{}, fmt.Errorf("%s: bad answer to upload: %v", c.name, err)
	}
	return e, nil
}

// List returns the images on the server, oldest first.
func (c *Client) List(ctx context.Context) ([]api.Entry, error) {
	req, err := c.request(ctx, http.MethodGet, api.PathImages, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var es []api.Entry
	if err := json.NewDecoder(resp.Body).Decode(&es); err != nil {
		return nil, fmt.Errorf("%s: bad list: %v", c.name, err)
	}
	return es, nil
}

// Ping reports whether a server answers at all. A server that refuses the
// token answers too (the error then is an *Error).
func (c *Client) Ping(ctx context.Context) error {
	req, err := c.request(ctx, http.MethodHead, api.PathImages, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// UntrustedError refuses an image that may run with more privilege than
// whoever uploaded it could grant: its credentials exceed the uploader's,
// or the server does not say who uploaded it.
type UntrustedError struct {
	ID       string
	RunsAs   string // what the uploader could not grant: "uid 0, gid 0"
	Uploader string // "uid 1001 (loopback, 127.0.0.1:50432)"
}

func (e *UntrustedError) Error() string {
	return fmt.Sprintf("image %s runs as %s, but was uploaded by %s", e.ID,
		safetext.Clean(e.RunsAs, 200), safetext.Clean(e.Uploader, 200))
}

// Fetch returns the image id as a stream. The caller must close it. A
// short stream (cut connection) ends in an error, never in a silent EOF.
// It refuses an image its uploader could not have made run as it (see
// trusted).
func (c *Client) Fetch(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.get(ctx, id, api.ImagePath(id), "", http.StatusOK)
	if err != nil {
		return nil, err
	}
	if err := c.trusted(id, resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp.Body, nil
}

// Records lists the records of image id (see api.Record); an *Error of
// status 409 when the server cannot (an image compressed as a whole).
func (c *Client) Records(ctx context.Context, id string) ([]api.Record, error) {
	resp, err := c.get(ctx, id, api.RecordsPath(id), "", http.StatusOK)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var recs []api.Record
	// At most MaxRecords records of at most ~100 bytes each.
	if err := json.NewDecoder(io.LimitReader(resp.Body, api.MaxRecords*128)).Decode(&recs); err != nil {
		return nil, fmt.Errorf("%s: the record list of %s: %v", c.base, id, err)
	}
	if len(recs) > api.MaxRecords {
		return nil, fmt.Errorf("%s: the record list of %s holds more than %d records", c.base, id, api.MaxRecords)
	}
	return recs, nil
}

// Range reads n bytes of image id at offset off (an HTTP range request).
func (c *Client) Range(ctx context.Context, id string, off, n int64) ([]byte, error) {
	if off < 0 || n <= 0 || n > MaxRange {
		return nil, fmt.Errorf("a range of %d bytes at %d of %s: want 1 to %d", n, off, id, MaxRange)
	}
	resp, err := c.get(ctx, id, api.ImagePath(id), fmt.Sprintf("bytes=%d-%d", off, off+n-1), http.StatusPartialContent)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return nil, fmt.Errorf("%s: bytes %d-%d of %s: %v", c.base, off, off+n-1, id, err)
	}
	return b, nil
}

// get sends GET path (of image id, with a Range header when rng is not
// empty) and wants status want.
func (c *Client) get(ctx context.Context, id, path, rng string, want int) (*http.Response, error) {
	if err := c.checkID(id); err != nil {
		return nil, err
	}
	req, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	return c.do(req, want)
}

// MaxRange is the most bytes Range reads at once: a record.
const MaxRange = 16 << 20

// trusted refuses (*UntrustedError), unless c.TrustUploaded, the image
// resp carries when the server says its credentials exceed its
// uploader's, or does not say.
func (c *Client) trusted(id string, resp *http.Response) error {
	up, ex := resp.Header.Get(api.HeaderUploader), resp.Header.Get(api.HeaderExceeds)
	if up == "" {
		up, ex = "someone the server does not name", "credentials the server did not check"
	}
	if ex != "" && !c.TrustUploaded {
		return &UntrustedError{ID: id, RunsAs: ex, Uploader: up}
	}
	return nil
}

// Delete removes image id from the server.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.deleteClaim(ctx, api.ImagePath(id), id, "")
}

// Claim takes image id for this receiver alone and returns it as a
// stream, with the token of the claim. Another receiver's claim then
// fails with ErrTaken, and the image is not offered by Next, until the
// claim is committed (Commit: the image is removed) or released
// (Release, or by the server when the image could not be sent whole or
// hold after it was sent). hold 0 is the server's default (60 s).
func (c *Client) Claim(ctx context.Context, id string, hold time.Duration) (io.ReadCloser, string, error) {
	if err := c.checkID(id); err != nil {
		return nil, "", err
	}
	path := api.ClaimPath(id)
	if hold > 0 {
		path += "?" + api.QueryHold + "=" + strconv.FormatFloat(hold.Seconds(), 'f', -1, 64)
	}
	req, err := c.request(ctx, http.MethodPost, path, nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return nil, "", err
	}
	tok := resp.Header.Get(api.HeaderClaim)
	if tok == "" {
		resp.Body.Close()
		return nil, "", fmt.Errorf("%s: no claim token in the answer to a claim", c.base)
	}
	if err := c.trusted(id, resp); err != nil {
		// Not ours to take: give it back for whoever trusts it.
		resp.Body.Close()
		c.Release(ctx, id, tok)
		return nil, "", err
	}
	return resp.Body, tok, nil
}

// Commit ends the claim token on image id by removing the image.
func (c *Client) Commit(ctx context.Context, id, token string) error {
	return c.deleteClaim(ctx, api.ImagePath(id), id, token)
}

// Release gives back the claim token on image id: the image stays, and
// is offered again.
func (c *Client) Release(ctx context.Context, id, token string) error {
	return c.deleteClaim(ctx, api.ClaimPath(id), id, token)
}

// deleteClaim sends DELETE path, with the claim token if not empty.
func (c *Client) deleteClaim(ctx context.Context, path, id, token string) error {
	if err := c.checkID(id); err != nil {
		return err
	}
	req, err := c.request(ctx, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set(api.HeaderClaim, token)
	}
	resp, err := c.do(req, http.StatusNoContent)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Next waits until an image arrives and returns its entry: the first to
// arrive after image after, or, when after is "", after the call. It waits
// until ctx is done.
func (c *Client) Next(ctx context.Context, after string) (api.Entry, error) {
	path := api.PathNext
	if after != "" {
		path += "?" + api.QueryAfter + "=" + url.QueryEscape(after)
	}
	req, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return api.Entry{}, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		if ctx.Err() != nil {
			return api.Entry{}, ctx.Err()
		}
		return api.Entry{}, err
	}
	defer resp.Body.Close()
	var e api.Entry
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.ID == "" {
		return api.Entry{}, fmt.Errorf("%s: bad answer to next: %v", c.name, err)
	}
	return e, nil
}

// checkID refuses a string that is not an id (api.ValidID) before any
// request: no other string ever goes into a URL path.
func (c *Client) checkID(id string) error {
	if api.ValidID(id) {
		return nil
	}
	return &Error{Status: http.StatusNotFound, Msg: fmt.Sprintf("%s: no image %q (ids are "+api.IDShape+")", c.name, id)}
}

// ClaimNext waits for the next image to arrive (as Next) and claims it
// (as Claim). When another receiver claims it first, taken (if not nil)
// is told its id, and ClaimNext waits for the one after it.
func (c *Client) ClaimNext(ctx context.Context, hold time.Duration, taken func(e api.Entry)) (api.Entry, io.ReadCloser, string, error) {
	after := ""
	for {
		e, err := c.Next(ctx, after)
		if errors.Is(err, ErrNotFound) && after != "" {
			// The image we lost was deleted meanwhile: wait for what
			// arrives from now on.
			e, err = c.Next(ctx, "")
		}
		if err != nil {
			return api.Entry{}, nil, "", err
		}
		body, tok, err := c.Claim(ctx, e.ID, hold)
		// Taken by another receiver, or already taken and removed: wait
		// for the next one.
		if errors.Is(err, ErrTaken) || errors.Is(err, ErrNotFound) {
			if taken != nil {
				taken(e)
			}
			after = e.ID
			continue
		}
		if err != nil {
			return api.Entry{}, nil, "", err
		}
		return e, body, tok, nil
	}
}
