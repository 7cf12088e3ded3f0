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

	"procs/pkg/api"
)

// An image is two files in the state directory: ID.img, the image, and
// ID.json, its api.Entry; each is written as .tmp-NAME first.
const (
	idBytes   = 10 // 80 random bits: api.IDLen characters of api.IDAlphabet
	imgSuffix = ".img"
	metaSufix = ".json"
	tmpPrefix = ".tmp-"
)

var idEncoding = base32.NewEncoding(api.IDAlphabet).WithPadding(base32.NoPadding)

// newID returns a fresh random id (see api.ValidID).
func newID() string {
	var b [idBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return idEncoding.EncodeToString(b[:])
}

// errNotFound is returned for a well-formed id with no image.
var errNotFound = errors.New("no such image")

// readEntry reads the sidecar of image id. An image without its data
// file is not there.
func (s *Server) readEntry(id string) (api.Entry, error) {
	if !api.ValidID(id) {
		return api.Entry{}, errNotFound
	}
	fi, err := s.root.Stat(id + imgSuffix)
	if errors.Is(err, fs.ErrNotExist) {
		return api.Entry{}, errNotFound
	}
	if err != nil {
		return api.Entry{}, err
	}
	b, err := s.root.ReadFile(id + metaSufix)
	if errors.Is(err, fs.ErrNotExist) {
		return api.Entry{}, errNotFound
	}
	if err != nil {
		return api.Entry{}, err
	}
	var e api.Entry
	if err := json.Unmarshal(b, &e); err != nil {
		return api.Entry{}, fmt.Errorf("metadata of %s: %v", id, err)
	}
	e.ID = id
	e.Size = fi.Size()
	return e, nil
}

// list returns every complete image, oldest first.
func (s *Server) list() ([]api.Entry, error) {
	d, err := s.root.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := []api.Entry{}
	for _, n := range names {
		id, ok := strings.CutSuffix(n, imgSuffix)
		if !ok || !api.ValidID(id) {
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
			if api.ValidID(id) && !have[id+imgSuffix] {
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
