package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
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
// going on: a few at once (each reads /proc/net/tcp whole), not one
// thread each for many connections opened together.
var identifying = make(chan struct{}, 4)

// ConnContext has the local user at the other end of a new connection
// identified, once per connection: SO_PEERCRED on a unix socket, the
// owner of the peer's socket (as identd tells it) on loopback TCP. It is
// looked up at the connection's first request that needs it, in the
// connection's own goroutine: not in the loop that accepts connections,
// where every new connection would wait for the look-ups before it (a
// read of /proc/net/tcp, milliseconds on a busy host; a lazy receiver
// opens several connections at once). Register it as
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

// procNet are the kernel's tables of TCP sockets of this network
// namespace; a variable for tests.
var procNet = []string{"/proc/net/tcp", "/proc/net/tcp6"}

// loopbackOwner returns the uid that owns the peer's end of the loopback
// connection between local (ours) and remote (the peer's), as identd
// does: the socket whose local address is remote and whose remote address
// is local. A socket that no process holds any more (inode 0: closed,
// in TIME_WAIT, orphaned) has no owner: the kernel shows uid 0 there.
func loopbackOwner(local, remote *net.TCPAddr) (int, error) {
	for _, name := range procNet {
		b, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return -1, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			f := bytes.Fields(sc.Bytes())
			if len(f) < 10 {
				continue
			}
			la, err1 := parseProcAddr(string(f[1]))
			ra, err2 := parseProcAddr(string(f[2]))
			if err1 != nil || err2 != nil || !sameAddr(la, remote) || !sameAddr(ra, local) {
				continue
			}
			if string(f[9]) == "0" {
				return -1, errors.New("the peer's socket is no longer held by any process")
			}
			uid, err := strconv.Atoi(string(f[7]))
			if err != nil || uid < 0 {
				return -1, fmt.Errorf("%s: bad uid %q", name, f[7])
			}
			return uid, nil
		}
	}
	return -1, fmt.Errorf("no socket of %s connected to %s in %v", remote, local, procNet)
}

func sameAddr(a, b *net.TCPAddr) bool { return a.Port == b.Port && a.IP.Equal(b.IP) }

// parseProcAddr parses an address of /proc/net/tcp{,6}: the IP as 32-bit
// words in host order (little endian here), each in hex, a colon, and the
// port in hex.
func parseProcAddr(s string) (*net.TCPAddr, error) {
	ip, port, ok := bytes.Cut([]byte(s), []byte(":"))
	if !ok || len(ip) != 8 && len(ip) != 32 {
		return nil, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(string(ip))
	if err != nil {
		return nil, err
	}
	addr := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.LittleEndian.PutUint32(addr[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	p, err := strconv.ParseUint(string(port), 16, 16)
	if err != nil {
		return nil, err
	}
	return &net.TCPAddr{IP: addr, Port: int(p)}, nil
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
