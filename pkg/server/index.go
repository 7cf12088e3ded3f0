package server

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"time"

	"procs/pkg/api"
)

// index is the server's view of the state directory, kept in memory and
// changed under Server.mu along with the files: the entries in arrival
// order, their claims, and the requests waiting for the next arrival. A
// request looks an entry up, or is handed one, without reading the
// directory.
type index struct {
	byID    map[string]*slot
	order   []*slot // by arrival
	waiters map[*waiter]struct{}
}

// slot is one stored image.
type slot struct {
	e     api.Entry
	claim *claim // nil when nobody has taken it
}

// claim is a receiver's hold on an image it is fetching: the image is
// hidden from /v1/next and cannot be claimed again until the receiver
// commits the claim (deletes the image with its token) or releases it,
// or the hold expires after the image was sent.
type claim struct {
	token string
	timer *time.Timer // releases the claim; nil while the image is being sent
}

// waiter is a GET /v1/next waiting for an image that arrived after mark.
type waiter struct {
	mark time.Time
	may  func(*api.Entry) bool // whether the requester may have an entry
	ch   chan api.Entry        // buffered: whoever hands an entry never waits
}

func newIndex(es []api.Entry) index {
	x := index{byID: map[string]*slot{}, waiters: map[*waiter]struct{}{}}
	for _, e := range es { // oldest first
		x.add(e)
	}
	return x
}

// add appends e, the latest arrival.
func (x *index) add(e api.Entry) {
	sl := &slot{e: e}
	x.byID[e.ID] = sl
	x.order = append(x.order, sl)
}

// remove forgets image id.
func (x *index) remove(id string) {
	sl := x.byID[id]
	if sl == nil {
		return
	}
	delete(x.byID, id)
	if sl.claim != nil && sl.claim.timer != nil {
		sl.claim.timer.Stop()
	}
	i := x.find(sl.e.Arrived)
	for ; i < len(x.order); i++ {
		if x.order[i] == sl {
			x.order = append(x.order[:i], x.order[i+1:]...)
			return
		}
	}
}

// find returns the position of the first entry that arrived at or after t.
func (x *index) find(t time.Time) int {
	return sort.Search(len(x.order), func(i int) bool { return !x.order[i].e.Arrived.Before(t) })
}

// entries returns every entry, oldest first, claimed ones marked.
func (x *index) entries() []api.Entry {
	out := make([]api.Entry, 0, len(x.order))
	for _, sl := range x.order {
		out = append(out, sl.entry())
	}
	return out
}

func (sl *slot) entry() api.Entry {
	e := sl.e
	e.Claimed = sl.claim != nil
	return e
}

// firstAfter returns the first unclaimed entry that arrived after mark
// and that may have.
func (x *index) firstAfter(mark time.Time, may func(*api.Entry) bool) (api.Entry, bool) {
	for i := x.find(mark); i < len(x.order); i++ {
		if sl := x.order[i]; sl.e.Arrived.After(mark) && sl.claim == nil && may(&sl.e) {
			return sl.e, true
		}
	}
	return api.Entry{}, false
}

// offer hands e to every waiter for an arrival before it, and forgets
// them: each costs one send, whatever the number of entries.
func (x *index) offer(e api.Entry) {
	for w := range x.waiters {
		if e.Arrived.After(w.mark) && w.may(&e) {
			w.ch <- e
			delete(x.waiters, w)
		}
	}
}

// newToken returns a fresh claim token: 32 hex digits.
func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
