package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"procs/format"
	"procs/pkg/api"
	"procs/pkg/directio"
)

// Meta is what a Verifier learns from an image's header.
type Meta struct {
	Comm string // process name
	PID  int    // original PID
	Host string // host the image was made on
	// Creds are the credentials of each PROCESS record of the image:
	// its process's and its threads' own.
	Creds []format.ProcessCreds
}

// Verifier reads one whole image from r, checking everything that can be
// checked (magic, version, checksums, end record), and returns its
// metadata. It must read up to the end of the image and no further, and
// must return an error for anything but a complete, intact image.
type Verifier func(r io.Reader) (Meta, error)

// Config configures a Server.
type Config struct {
	Dir     string   // state directory, created (mode 0700) if missing
	Verify  Verifier // nil means VerifyImage
	MaxSize int64    // largest image accepted, in bytes; 0 means no limit
	// Token, when not empty, must be presented by every request as
	// "Authorization: Bearer TOKEN" (the scheme in any case); it is then
	// the identity of every request. Without it, the identity of a
	// request is the local user ConnContext found, and requests that
	// change the store need one.
	Token string
	// TokenOwner is what a token holder may grant a process (the uid
	// and groups of the token file's owner); nil grants nothing.
	TokenOwner *api.Identity
	// Log receives one line per event; nil means quiet.
	Log func(format string, args ...any)
	// MaxUploads is how many uploads may run at once. As many more
	// may wait up to 10 s for a place; beyond, an upload is answered
	// 503 with Retry-After. 0 means DefaultMaxUploads.
	MaxUploads int
	// ReadTimeout is how long a request's headers may take, and how long
	// an upload's body may send nothing, before the connection is cut.
	// 0 means DefaultReadTimeout.
	ReadTimeout time.Duration
}

const (
	// DefaultMaxUploads is the default of Config.MaxUploads.
	DefaultMaxUploads = 8
	// DefaultReadTimeout is the default of Config.ReadTimeout.
	DefaultReadTimeout = 30 * time.Second
	// retryAfter is the Retry-After of a 503 for too many uploads, in
	// seconds.
	retryAfter = 5
)

// Server stores and serves images. Create it with New, serve
// Server.Handler, call Shutdown when the HTTP server shuts down and Close
// at the end.
type Server struct {
	cfg      Config
	root     *os.Root
	tokenSum [sha256.Size]byte
	tokenID  *api.Identity // the identity of a token holder

	mu   sync.Mutex // serialises commits; guards last and idx
	last time.Time  // arrival time of the latest committed image

	quit     chan struct{} // closed by Shutdown
	quitOnce sync.Once

	idx     index         // entries, claims, waiters; guarded by mu
	lock    *os.File      // the state directory's lock, held while open
	uploads chan struct{} // one token per upload running
	queue   chan struct{} // one token per upload waiting for a place
	tidy    sync.Mutex    // guards tidying
	tidying bool          // a return of memory to the system is planned
}

// New opens (creating it if needed) the state directory and removes what an
// interrupted earlier run left behind.
func New(cfg Config) (*Server, error) {
	if cfg.Verify == nil {
		cfg.Verify = VerifyImage
	}
	if cfg.Dir == "" {
		return nil, errors.New("server: no state directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	if cfg.MaxUploads <= 0 {
		cfg.MaxUploads = DefaultMaxUploads
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		root:     root,
		tokenSum: sha256.Sum256([]byte(cfg.Token)),
		quit:     make(chan struct{}),
		tokenID:  &api.Identity{UID: -1, GID: -1},
		uploads:  make(chan struct{}, cfg.MaxUploads),
		queue:    make(chan struct{}, cfg.MaxUploads),
	}
	if cfg.TokenOwner != nil {
		id := *cfg.TokenOwner
		s.tokenID = &id
	}
	s.tokenID.Auth = api.AuthToken
	if s.lock, err = lockDir(root, cfg.Dir); err != nil {
		root.Close()
		return nil, err
	}
	var es []api.Entry
	s.last, err = s.cleanup()
	if err == nil {
		es, err = s.list()
	}
	if err != nil {
		s.lock.Close()
		root.Close()
		return nil, fmt.Errorf("state directory %s: %w", cfg.Dir, err)
	}
	s.idx = newIndex(es)
	return s, nil
}

// Shutdown wakes every request waiting for the next image; they answer
// 503. Register it with http.Server.RegisterOnShutdown.
func (s *Server) Shutdown() {
	s.quitOnce.Do(func() { close(s.quit) })
}

// Close releases the state directory.
func (s *Server) Close() error {
	s.Shutdown()
	s.lock.Close()
	return s.root.Close()
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Log != nil {
		s.cfg.Log(format, args...)
	}
}

// Handler returns the HTTP interface.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+api.PathImages, s.upload)
	mux.HandleFunc("GET "+api.PathImages, s.listImages)
	mux.HandleFunc("GET "+api.PathImage, s.owned(s.fetch))
	mux.HandleFunc("DELETE "+api.PathImage, s.owned(s.delete))
	mux.HandleFunc("POST "+api.PathClaim, s.owned(s.claim))
	mux.HandleFunc("DELETE "+api.PathClaim, s.release)
	mux.HandleFunc("GET "+api.PathNext, s.next)
	mux.HandleFunc("GET "+api.PathRecords, s.owned(s.records))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpError(w, http.StatusNotFound, "no such endpoint")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token != "" && !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", api.BearerScheme+` realm="procs"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong token")
			return
		}
		if _, why := s.requester(r); why != "" && isWrite(r) {
			s.logf("%s %s from %s refused: %s", r.Method, r.URL.Path, r.RemoteAddr, why)
			httpError(w, http.StatusForbidden, "cannot tell which local user is connecting ("+why+"): connect over loopback or a unix socket, or use a token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// authorized compares the request's bearer token with the configured one
// in constant time (hashes make the lengths equal). The scheme is
// matched in any case (RFC 9110, 11.1).
func (s *Server) authorized(r *http.Request) bool {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, api.BearerScheme) {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// httpError answers {"error": msg} (api.ErrorBody).
func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(api.ErrorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// bodyReader remembers the first error of the request body, to tell a
// cut connection or an oversized body from a corrupt image.
type bodyReader struct {
	r   io.Reader
	n   int64
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// upload handles POST /v1/images.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if !s.startUpload(w, r) {
		return
	}
	defer s.endUpload()
	var body io.Reader = r.Body
	if s.cfg.MaxSize > 0 {
		body = http.MaxBytesReader(w, r.Body, s.cfg.MaxSize)
	}
	br := &bodyReader{r: s.stallReader(w, body)}
	id := newID()
	tmp := tmpPrefix + id + imgSuffix
	// Straight to the disk if the file system allows it (see directio):
	// the upload goes on arriving and being checked while earlier pieces
	// are written.
	direct := true
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_DIRECT, 0o600)
	if errors.Is(err, syscall.EINVAL) {
		direct = false
		f, err = s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		s.logf("upload: %v", err)
		httpError(w, http.StatusInternalServerError, "cannot store image")
		return
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			s.root.Remove(tmp)
		}
	}()

	fw := directio.NewWriter(f, direct, 0)
	meta, verr := s.cfg.Verify(io.TeeReader(br, fw))
	if verr == nil && fw.Err() == nil {
		// Nothing may follow the image.
		var one [1]byte
		if n, _ := io.ReadFull(br, one[:]); n > 0 {
			verr = errors.New("data after the end of the image")
		}
	}
	if err := fw.Close(); err != nil {
		s.logf("upload: %v", err)
		httpError(w, http.StatusInsufficientStorage, "cannot store image: "+err.Error())
		return
	}
	if br.err != nil {
		var mbe *http.MaxBytesError
		if errors.As(br.err, &mbe) {
			s.logf("upload from %s: image larger than %d bytes, refused", r.RemoteAddr, s.cfg.MaxSize)
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("image larger than the limit of %d bytes", s.cfg.MaxSize))
			return
		}
		s.logf("upload from %s: cut after %d bytes: %v", r.RemoteAddr, br.n, br.err)
		httpError(w, http.StatusBadRequest, fmt.Sprintf("upload cut after %d bytes: %v", br.n, br.err))
		return
	}
	if verr != nil {
		s.logf("upload from %s: rejected: %v", r.RemoteAddr, verr)
		httpError(w, http.StatusBadRequest, "bad image: "+verr.Error())
		return
	}
	if err := f.Sync(); err != nil {
		s.logf("upload: %v", err)
		httpError(w, http.StatusInsufficientStorage, "cannot store image: "+err.Error())
		return
	}
	if err := f.Close(); err != nil {
		s.logf("upload: %v", err)
		httpError(w, http.StatusInsufficientStorage, "cannot store image: "+err.Error())
		return
	}
	done = true // f is closed; commit removes tmp on failure

	who, _ := s.requester(r)
	e := api.Entry{
		ID:       id,
		Comm:     meta.Comm,
		PID:      meta.PID,
		Host:     meta.Host,
		Origin:   origin(r),
		Size:     br.n,
		Uploader: who,
		Exceeds:  Exceeds(meta.Creds, who),
	}
	if len(meta.Creds) > 0 {
		c := api.Creds(meta.Creds[0].Creds)
		e.Creds = &c
	}
	if err := s.commit(&e, tmp); err != nil {
		s.root.Remove(tmp)
		s.logf("upload: %v", err)
		httpError(w, http.StatusInsufficientStorage, "cannot store image: "+err.Error())
		return
	}
	s.logf("stored %s: %s pid %d from %s, %d bytes, uploaded by %v", e.ID, e.Comm, e.PID, e.Origin, e.Size, e.Uploader)
	if e.Exceeds != "" {
		s.logf("%s runs as %s, more than its uploader may grant", e.ID, e.Exceeds)
	}
	w.Header().Set("Location", api.ImagePath(e.ID))
	writeJSON(w, http.StatusCreated, e)
}

// commit makes a verified, synced temporary image visible under its id:
// metadata first, then the image by rename, then an fsync of the
// directory. Commits are serialised so arrival times are strictly
// increasing in commit order.
func (s *Server) commit(e *api.Entry, tmp string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	if !now.After(s.last) {
		now = s.last.Add(time.Nanosecond)
	}
	e.Arrived = now
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmpMeta := tmpPrefix + e.ID + metaSufix
	if err := s.writeFileSync(tmpMeta, append(b, '\n')); err != nil {
		return err
	}
	if err := s.root.Rename(tmpMeta, e.ID+metaSufix); err != nil {
		s.root.Remove(tmpMeta)
		return err
	}
	if err := s.root.Rename(tmp, e.ID+imgSuffix); err != nil {
		s.root.Remove(e.ID + metaSufix)
		return err
	}
	if err := s.syncDir(); err != nil {
		s.root.Remove(e.ID + imgSuffix)
		s.root.Remove(e.ID + metaSufix)
		return err
	}
	s.last = now
	s.idx.add(*e)
	s.idx.offer(*e)
	return nil
}

// origin is the api.HeaderOrigin header when it is a sane host name, else
// the peer's IP address.
func origin(r *http.Request) string {
	if o := r.Header.Get(api.HeaderOrigin); o != "" && len(o) <= 255 && strings.IndexFunc(o, func(c rune) bool {
		return c > unicode.MaxASCII || !unicode.IsPrint(c) || c == ' '
	}) < 0 {
		return o
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// listImages handles GET /v1/images.
func (s *Server) listImages(w http.ResponseWriter, r *http.Request) {
	who, _ := s.requester(r)
	s.mu.Lock()
	es := s.idx.entries()
	s.mu.Unlock()
	mine := es[:0]
	for _, e := range es {
		if mayRead(who, &e) {
			mine = append(mine, e)
		}
	}
	writeJSON(w, http.StatusOK, mine)
}

// owned lets h serve a request on an image only when the requester may
// read it (see mayRead); another's image is refused with 403.
func (s *Server) owned(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if e, ok := s.lookup(id); ok {
			if who, _ := s.requester(r); !mayRead(who, &e) {
				httpError(w, http.StatusForbidden, "image "+id+" is not yours: only its uploader and root may read or remove it")
				return
			}
		}
		h(w, r)
	}
}

// lookup returns the entry of image id.
func (s *Server) lookup(id string) (api.Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.idx.byID[id]
	if sl == nil {
		return api.Entry{}, false
	}
	return sl.entry(), true
}

// fetch handles GET (and HEAD) /v1/images/{id}.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !api.ValidID(id) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no image %q", id))
		return
	}
	e, ok := s.lookup(id)
	if !ok {
		httpError(w, http.StatusNotFound, "no image "+id)
		return
	}
	s.send(w, r, e, nil)
}

// send answers image e, and tells sent (when not nil) whether all of it
// went out.
func (s *Server) send(w http.ResponseWriter, r *http.Request, e api.Entry, sent func(ok bool)) {
	if sent == nil {
		sent = func(bool) {}
	}
	id := e.ID
	var err error
	// A whole image is read straight from the disk when the file system
	// allows it (see streamDirect); ranges and conditions go to
	// http.ServeContent.
	direct := plainGet(r)
	var f *os.File
	if direct {
		f, err = s.root.OpenFile(id+imgSuffix, os.O_RDONLY|syscall.O_DIRECT, 0)
		if errors.Is(err, syscall.EINVAL) {
			direct = false
		}
	}
	if !direct {
		f, err = s.root.Open(id + imgSuffix)
	}
	if err != nil {
		// Deleted between the two steps.
		sent(false)
		httpError(w, http.StatusNotFound, "no image "+id)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+id+`.procs"`)
	h.Set(api.HeaderComm, strconv.Quote(e.Comm))
	h.Set(api.HeaderPID, strconv.Itoa(e.PID))
	trustHeaders(h, &e)
	// An open file stays readable even if deleted meanwhile.
	if !direct {
		http.ServeContent(w, r, "", e.Arrived, f)
		s.logf("sent %s to %s", id, r.RemoteAddr)
		sent(true)
		return
	}
	fi, err := f.Stat()
	if err != nil {
		s.logf("fetch %s: %v", id, err)
		sent(false)
		httpError(w, http.StatusInternalServerError, "cannot read image")
		return
	}
	if n, err := streamDirect(w, f, fi.Size(), e.Arrived); err != nil {
		// The client sees a short body: Content-Length was promised.
		s.logf("sending %s to %s: cut after %d bytes: %v", id, r.RemoteAddr, n, err)
		sent(false)
		return
	}
	s.logf("sent %s to %s", id, r.RemoteAddr)
	sent(true)
}

// delete handles DELETE /v1/images/{id}. With the header X-Procs-Claim,
// it commits that claim: the image goes only if the token is the one of
// its claim. An image claimed by someone else is not deleted (409).
func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !api.ValidID(id) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no image %q", id))
		return
	}
	token := r.Header.Get(api.HeaderClaim)
	s.mu.Lock()
	sl := s.idx.byID[id]
	var err error
	switch {
	case sl == nil:
		err = os.ErrNotExist
	case sl.claim == nil && token != "":
		err = errClaimLost
	case sl.claim != nil && sl.claim.token != token:
		err = errTaken
	default:
		err = s.root.Remove(id + imgSuffix)
		if err == nil {
			s.idx.remove(id)
			s.root.Remove(id + metaSufix)
			err = s.syncDir()
		}
	}
	s.mu.Unlock()
	switch {
	case errors.Is(err, os.ErrNotExist):
		httpError(w, http.StatusNotFound, "no image "+id)
	case err == errTaken || err == errClaimLost:
		httpError(w, http.StatusConflict, "image "+id+" "+err.Error())
	case err != nil:
		s.logf("delete %s: %v", id, err)
		httpError(w, http.StatusInternalServerError, "cannot delete image")
	default:
		s.logf("deleted %s", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// next handles GET /v1/next?after=ID&timeout=SECONDS: the first image that
// arrived after image ID, or, without after, after the request came in,
// and that nobody has claimed. It waits until one arrives, the timeout
// (if any) expires (204), the client goes away or the server shuts down
// (503). A waiting request is handed the entry that arrives: it costs
// one send per arrival, and no look at the directory.
func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ctx := r.Context()
	if t := q.Get(api.QueryTimeout); t != "" {
		sec, err := strconv.ParseFloat(t, 64)
		if err != nil || sec < 0 || sec > 1e6 {
			httpError(w, http.StatusBadRequest, "bad timeout "+strconv.Quote(t))
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(sec*float64(time.Second)))
		defer cancel()
	}
	s.mu.Lock()
	mark := s.last
	if after := q.Get(api.QueryAfter); after != "" {
		sl := s.idx.byID[after]
		if sl == nil {
			s.mu.Unlock()
			httpError(w, http.StatusNotFound, fmt.Sprintf("no image %q", after))
			return
		}
		mark = sl.e.Arrived
	}
	who, _ := s.requester(r)
	may := func(e *api.Entry) bool { return mayRead(who, e) }
	e, ok := s.idx.firstAfter(mark, may)
	wt := &waiter{mark: mark, may: may, ch: make(chan api.Entry, 1)}
	if !ok {
		s.idx.waiters[wt] = struct{}{}
	}
	s.mu.Unlock()
	if ok {
		writeJSON(w, http.StatusOK, e)
		return
	}
	defer func() {
		s.mu.Lock()
		delete(s.idx.waiters, wt)
		s.mu.Unlock()
	}()
	select {
	case e := <-wt.ch:
		writeJSON(w, http.StatusOK, e)
	case <-s.quit:
		httpError(w, http.StatusServiceUnavailable, "server shutting down")
	case <-ctx.Done():
		if r.Context().Err() == nil {
			w.WriteHeader(http.StatusNoContent) // timeout
		}
	}
}
