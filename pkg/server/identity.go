package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"slices"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"procs/pkg/api"
	"procs/pkg/linux"
)

// NewIdentity returns the identity of user uid (gid -1: its primary group
// in the user database), with the groups the user database gives it.
func NewIdentity(uid, gid int, auth, peer string) *api.Identity {
	id := &api.Identity{UID: uid, GID: gid, Auth: auth, Peer: peer}
	if uid < 0 {
		id.GID = -1
		return id
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if id.GID < 0 {
			if g, err := strconv.Atoi(u.Gid); err == nil {
				id.GID = g
			}
		}
		if gs, err := u.GroupIds(); err == nil {
			for _, s := range gs {
				if g, err := strconv.Atoi(s); err == nil {
					id.Groups = append(id.Groups, g)
				}
			}
		}
	}
	if id.GID >= 0 {
		id.Groups = append(id.Groups, id.GID)
	}
	slices.Sort(id.Groups)
	id.Groups = slices.Compact(id.Groups)
	return id
}

// peer is what ConnContext learnt about a connection: its local identity,
// or why there is none.
type peer struct {
	id  *api.Identity
	why string
}

type peerKey struct{}

// identifying holds a place for each look-up of a connection's owner
// going on: a few at once (each asks sock_diag), not one thread each for
// many connections opened together.
var identifying = make(chan struct{}, 4)

// ConnContext has the local user at the other end of a new connection
// identified, once per connection: SO_PEERCRED on a unix socket, the
// owner of the peer's socket (as identd tells it) on loopback TCP. It is
// looked up at the connection's first request that needs it, in the
// connection's own goroutine: not in the loop that accepts connections,
// where every new connection would wait for the look-ups before it (a
// sock_diag question, which a busy host may be slow to answer; a lazy
// receiver opens several connections at once). Register it as
// http.Server.ConnContext.
func (s *Server) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, sync.OnceValue(func() peer {
		identifying <- struct{}{}
		id, err := identify(c)
		<-identifying
		p := peer{id: id}
		if err != nil {
			p.why = err.Error()
			s.logf("connection from %s: %v", c.RemoteAddr(), err)
		}
		return p
	}))
}

// identify returns the local user at the other end of c.
func identify(c net.Conn) (*api.Identity, error) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	switch c := c.(type) {
	case *net.UnixConn:
		return unixPeer(c)
	case *net.TCPConn:
		local, lok := c.LocalAddr().(*net.TCPAddr)
		remote, rok := c.RemoteAddr().(*net.TCPAddr)
		if !lok || !rok || !remote.IP.IsLoopback() {
			return nil, errors.New("not a local peer")
		}
		uid, err := loopbackOwner(local, remote)
		if err != nil {
			return nil, err
		}
		return NewIdentity(uid, -1, api.AuthLoopback, remote.String()), nil
	}
	return nil, fmt.Errorf("cannot identify the peer of a %T", c)
}

// unixPeer returns the credentials of a unix socket's peer.
func unixPeer(c *net.UnixConn) (*api.Identity, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	return NewIdentity(int(cred.Uid), int(cred.Gid), api.AuthUnix, "pid "+strconv.Itoa(int(cred.Pid))), nil
}

// loopbackOwner returns the uid that owns the peer's end of the loopback
// connection between local (ours) and remote (the peer's), as identd
// does: the socket whose own address is remote and whose peer's is
// local. sock_diag finds that one socket by its addresses (reading
// /proc/net/tcp, every socket of the namespace, took tens of
// milliseconds a connection on a busy machine, in the accept loop). A
// socket that no process holds any more (inode 0: closed, in TIME_WAIT,
// orphaned) has no owner: the kernel shows uid 0 there.
func loopbackOwner(local, remote *net.TCPAddr) (int, error) {
	uid, ino, err := linux.TCPOwner(remote, local)
	switch {
	case errors.Is(err, linux.ErrNotListed):
		return -1, fmt.Errorf("no socket of %s connected to %s", remote, local)
	case err != nil:
		return -1, err
	case ino == 0:
		return -1, errors.New("the peer's socket is no longer held by any process")
	}
	return uid, nil
}

// requester returns the identity of request r: the token's when the
// server has a token (the caller checked it), else the local user
// ConnContext found, else nil and why not.
func (s *Server) requester(r *http.Request) (*api.Identity, string) {
	if s.cfg.Token != "" {
		id := *s.tokenID
		id.Peer = r.RemoteAddr
		return &id, ""
	}
	identified, ok := r.Context().Value(peerKey{}).(func() peer)
	if !ok {
		return nil, "connection not identified"
	}
	p := identified()
	if p.id == nil {
		return nil, p.why
	}
	return p.id, ""
}

// mayRead says whether who may list, fetch, claim or remove entry e: root,
// and whoever uploaded it (the same uid, whichever way each came in). An
// image holds a process's memory: another user's keys and passwords. An
// entry with no uploader recorded (stored before uploaders were) is
// root's; an unidentified requester may have none.
func mayRead(who *api.Identity, e *api.Entry) bool {
	switch {
	case who == nil:
		return false
	case who.UID == 0:
		return true
	}
	return e.Uploader != nil && e.Uploader.UID == who.UID
}
