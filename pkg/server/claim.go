package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"procs/pkg/api"
)

const (
	// DefaultClaimHold is how long a claim waits for its commit after
	// the image was sent, unless the claim says otherwise (?hold=S).
	DefaultClaimHold = 60 * time.Second
	// MaxClaimHold is the longest hold a claim may ask for.
	MaxClaimHold = time.Hour
)

var (
	errTaken     = errors.New("already taken by another receiver")
	errClaimLost = errors.New("is no longer claimed with this token (the claim expired or was released)")
)

// claim handles POST /v1/images/{id}/claim?hold=SECONDS: it takes image
// id for the caller, atomically (a second claim is answered 409), and
// answers the image with the claim's token in X-Procs-Claim. The caller
// commits the claim with DELETE /v1/images/{id} and the token once it has
// what it wanted, or releases it with DELETE /v1/images/{id}/claim. A
// claim is released by the server when the image could not be sent
// whole, and when it is not committed within the hold after the image
// was sent: the image is then offered again.
func (s *Server) claim(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	hold := DefaultClaimHold
	if h := r.URL.Query().Get(api.QueryHold); h != "" {
		sec, err := strconv.ParseFloat(h, 64)
		if err != nil || sec <= 0 || sec > MaxClaimHold.Seconds() {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("bad hold %s (want seconds, at most %v)", strconv.Quote(h), MaxClaimHold))
			return
		}
		hold = time.Duration(sec * float64(time.Second))
	}
	s.mu.Lock()
	sl := s.idx.byID[id]
	if sl == nil || sl.claim != nil {
		s.mu.Unlock()
		if sl == nil {
			httpError(w, http.StatusNotFound, fmt.Sprintf("no image %q", id))
		} else {
			httpError(w, http.StatusConflict, "image "+id+" "+errTaken.Error())
		}
		return
	}
	c := &claim{token: newToken()}
	sl.claim = c
	e := sl.e
	s.mu.Unlock()
	s.logf("%s claimed by %s", id, r.RemoteAddr)
	w.Header().Set(api.HeaderClaim, c.token)
	s.send(w, r, e, func(ok bool) {
		if !ok {
			s.releaseClaim(id, c, "its download failed")
			return
		}
		s.mu.Lock()
		if sl.claim == c {
			c.timer = time.AfterFunc(hold, func() { s.releaseClaim(id, c, "not committed within "+hold.String()) })
		}
		s.mu.Unlock()
	})
}

// release handles DELETE /v1/images/{id}/claim: the holder of the claim
// (X-Procs-Claim) gives the image back.
func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	token := r.Header.Get(api.HeaderClaim)
	s.mu.Lock()
	sl := s.idx.byID[id]
	var c *claim
	if sl != nil {
		c = sl.claim
	}
	s.mu.Unlock()
	switch {
	case sl == nil:
		httpError(w, http.StatusNotFound, fmt.Sprintf("no image %q", id))
	case c == nil || c.token != token || !s.releaseClaim(id, c, "by its holder"):
		httpError(w, http.StatusConflict, "image "+id+" "+errClaimLost.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// releaseClaim ends claim c of image id, if it still holds, and offers
// the image to the requests waiting for one.
func (s *Server) releaseClaim(id string, c *claim, why string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.idx.byID[id]
	if sl == nil || sl.claim != c {
		return false
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	sl.claim = nil
	s.idx.offer(sl.e)
	s.logf("claim on %s released: %s", id, why)
	return true
}
