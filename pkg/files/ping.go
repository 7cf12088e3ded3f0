package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/procfs"
)

// pingSocket is an ICMP echo ("ping") socket, IPv4 or IPv6: SOCK_DGRAM
// of IPPROTO_ICMP or IPPROTO_ICMPV6, which a user of a group in
// net.ipv4.ping_group_range may make (File.Ping). It travels as a UDP
// socket does (udp.go): its id (its "port": the kernel gives it the
// echo replies that carry it), the peer it is connected to, its options.
//
// The echo replies queued and not read are not carried: the kernel lets
// a peek see only the first one, and a reply lost is what a pinging
// program expects of a network (it counts it lost, and pings on). Nor is
// its shutdown state, which no diagnostic tells. The loader makes it
// again as the process, whose groups must be in the host's
// ping_group_range.
type pingSocket struct{}

func (pingSocket) Name() string { return format.FilePing }

// pingProtos are the protocols, as the kernel names them, of ping
// sockets.
var pingProtos = map[string]ipProto{"PING": {unix.AF_INET, unix.IPPROTO_ICMP}, "PINGv6": {unix.AF_INET6, unix.IPPROTO_ICMPV6}}

func (pingSocket) Match(fd *procfs.FD, _ Terminals) bool {
	_, ok := pingProtos[fd.Proto]
	return fd.Kind == procfs.Socket && ok
}

func (pingSocket) Traits() Traits { return Traits{OneOpen: true, Sent: true} }

func (pingSocket) Dump(src Source, fd *procfs.FD, idx int) error {
	p := pingProtos[fd.Proto]
	s, err := takeFD(src.PID(), fd.Num)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	d := &format.Dgram{Family: p.family}
	if err := readDgram(s, fd.Num, "ping", p.proto, d); err != nil {
		return err
	}
	src.File(idx).Ping = d
	return nil
}

// protoOf is the protocol of a ping socket of family.
func (pingSocket) protoOf(family int) int {
	if family == unix.AF_INET6 {
		return unix.IPPROTO_ICMPV6
	}
	return unix.IPPROTO_ICMP
}

func (k pingSocket) Prepare(l Loader, i int, f *format.File, what string) error {
	d := f.Ping
	proto := k.protoOf(d.Family)
	s, err := makeDgram(l, d, proto)
	if err == nil {
		if err = l.AsProcess(func() error { return finishDgram(s, d, proto) }); err != nil {
			unix.Close(s)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: a ping socket: %w", what, err)
	}
	l.Own(i, os.NewFile(uintptr(s), "ping socket"))
	return nil
}

// Validate checks a ping socket's family, addresses and options; it has
// no queue, no shutdown state and no UDP-Lite coverage.
func (pingSocket) Validate(fs []format.File, i int, _ []format.Process) error {
	d := fs[i].Ping
	switch {
	case d == nil:
		return fmt.Errorf("image file %d, a ping socket, has no socket state", i)
	case d.Lite || len(d.Queue) > 0 || d.Shutdown != 0:
		return fmt.Errorf("image ping socket %d has what only a UDP socket has", i)
	}
	if err := validDgram(d, false); err != nil {
		return fmt.Errorf("image ping socket %d: %w", i, err)
	}
	return nil
}
