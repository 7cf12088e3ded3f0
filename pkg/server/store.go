package server

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"procs/format"
)

// Entry describes one stored image, as listed by GET /v1/images.
type Entry struct {
	ID      string    `json:"id"`
	Comm    string    `json:"comm"`   // process name, from the image
	PID     int       `json:"pid"`    // original PID, from the image
	Host    string    `json:"host"`   // host the image was made on, from the image
	Origin  string    `json:"origin"` // X-Procs-Origin header, else the peer's address
	Size    int64     `json:"size"`   // bytes
	Arrived time.Time `json:"arrived"`
	// Uploader is who uploaded the image, as the server established it
	// (nil for an image stored before uploaders were recorded).
	Uploader *Identity `json:"uploader,omitempty"`
	// Creds are the credentials the image's process runs with.
	Creds *format.Creds `json:"creds,omitempty"`
	// Exceeds lists what of the image's credentials its uploader could
	// not grant (see Exceeds); empty when nothing.
	Exceeds string `json:"exceeds,omitempty"`
	Claimed bool   `json:"claimed,omitempty"` // a receiver has taken it (POST .../claim)
}

const (
	idBytes   = 10 // 80 random bits
	idLen     = 16 // base32 characters for idBytes
	imgSuffix = ".img"
	metaSufix = ".json"
	tmpPrefix = ".tmp-"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a fresh random id: 16 characters of [a-z2-7].
func newID() string {
	var b [idBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return idEncoding.EncodeToString(b[:])
}

// ValidID reports whether s has the exact shape of an id. Anything else,
// in particular anything that could be a path, is rejected before any
// file is touched.
func ValidID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// errNotFound is returned for a well-formed id with no image.
var errNotFound = errors.New("no such image")

// readEntry reads the sidecar of image id. An image without its data
// file is not there.
func (s *Server) readEntry(id string) (Entry, error) {
	if !ValidID(id) {
		return Entry{}, errNotFound
	}
	fi, err := s.root.Stat(id + imgSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, errNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	b, err := s.root.ReadFile(id + metaSufix)
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, errNotFound
	}
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return Entry{}, fmt.Errorf("metadata of %s: %v", id, err)
	}
	e.ID = id
	e.Size = fi.Size()
	return e, nil
}

// list returns every complete image, oldest first.
func (s *Server) list() ([]Entry, error) {
	d, err := s.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := []Entry{}
	for _, n := range names {
		id, ok := strings.CutSuffix(n, imgSuffix)
		if !ok || !ValidID(id) {
			continue
		}
		e, err := s.readEntry(id)
		if errors.Is(err, errNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			s.logf("%v", err)
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Arrived.Equal(out[j].Arrived) {
			return out[i].Arrived.Before(out[j].Arrived)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// cleanup removes what an earlier run left half done: temporary files and
// metadata without an image. It returns the latest arrival time found.
func (s *Server) cleanup() (time.Time, error) {
	d, err := s.root.Open(".")
	if err != nil {
		return time.Time{}, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return time.Time{}, err
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, tmpPrefix):
			if err := s.root.Remove(n); err != nil {
				return time.Time{}, err
			}
			s.logf("removed leftover %s", n)
		case strings.HasSuffix(n, metaSufix):
			id := strings.TrimSuffix(n, metaSufix)
			if ValidID(id) && !have[id+imgSuffix] {
				if err := s.root.Remove(n); err != nil {
					return time.Time{}, err
				}
				s.logf("removed leftover %s", n)
			}
		}
	}
	var last time.Time
	es, err := s.list()
	if err != nil {
		return time.Time{}, err
	}
	for _, e := range es {
		if e.Arrived.After(last) {
			last = e.Arrived
		}
	}
	return last, nil
}

// syncDir makes renames and removals in the state directory durable.
func (s *Server) syncDir() error {
	d, err := s.root.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// writeFileSync writes b to name in the state directory and fsyncs it.
func (s *Server) writeFileSync(name string, b []byte) error {
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.root.Remove(name)
	}
	return err
}
