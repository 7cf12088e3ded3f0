package api

import (
	"fmt"
	"time"
)

// Entry describes one stored image: the answer to an upload, an element
// of the list, the answer of PathNext. The server also keeps it, as is,
// beside the image.
type Entry struct {
	ID      string    `json:"id"`
	Comm    string    `json:"comm"`   // process name, from the image
	PID     int       `json:"pid"`    // original PID, from the image
	Host    string    `json:"host"`   // host the image was made on, from the image
	Origin  string    `json:"origin"` // HeaderOrigin of the upload, else the peer's address
	Size    int64     `json:"size"`   // bytes
	Arrived time.Time `json:"arrived"`
	// Uploader is who uploaded the image, as the server established it;
	// nil for an image stored before uploaders were recorded, and from a
	// server that does not say.
	Uploader *Identity `json:"uploader,omitempty"`
	// Creds are the credentials the image's process runs with.
	Creds *Creds `json:"creds,omitempty"`
	// Exceeds lists what of the image's credentials its uploader could
	// not grant; empty when nothing.
	Exceeds string `json:"exceeds,omitempty"`
	Claimed bool   `json:"claimed,omitempty"` // a receiver has taken it (POST PathClaim)
}

// Creds are credentials of a process as the image's PROCESS record gives
// them. The server converts the image format's own type (format.Creds)
// to this one: the conversion stops compiling when the two differ, so
// that a change of the image's credentials is a decision about the wire
// too.
type Creds struct {
	UID        [4]int `json:"uid"` // real, effective, saved, fs
	GID        [4]int `json:"gid"`
	Groups     []int  `json:"groups"`
	NoNewPrivs bool   `json:"no_new_privs,omitempty"`
}

// Ways an identity is established (Identity.Auth).
const (
	AuthUnix     = "unix"     // SO_PEERCRED of a unix socket
	AuthLoopback = "loopback" // owner of the peer's socket, from sock_diag
	AuthToken    = "token"    // the bearer token: its file's owner
)

// Identity is who sent a request, as the server established it: by the
// kernel for a local peer, by the token otherwise. Never from a header.
type Identity struct {
	UID int `json:"uid"`
	// GID is the peer's group (unix: its effective gid; otherwise the
	// primary group of UID in the user database), -1 when unknown.
	GID int `json:"gid"`
	// Groups are the groups the identity may grant a process: GID and
	// every group the user database lists UID in.
	Groups []int  `json:"groups,omitempty"`
	Auth   string `json:"auth"` // AuthUnix, AuthLoopback or AuthToken
	// Peer is the address the connection came from (unix: "pid N", the
	// peer's PID when it connected).
	Peer string `json:"peer"`
}

// String says who, for listings, messages and HeaderUploader: "uid 1001
// (loopback, 127.0.0.1:50432)".
func (id *Identity) String() string {
	if id == nil {
		return "unknown"
	}
	return fmt.Sprintf("uid %d (%s, %s)", id.UID, id.Auth, id.Peer)
}
