package tests

// Netlink route sockets made again (a program asking the kernel for a
// link, `ip monitor` listening to changes); raw, packet and other netlink
// sockets refused by name.

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"procs/format"
	"procs/tests/internal/hosts"
)

// routePy asks the kernel every 50 ms, on a netlink route socket bound
// once, for link 1 (RTM_GETLINK), and writes a numbered line: its port
// id, and the answer's type and sequence number.
const routePy = `
import socket, struct, time
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
s.bind((0, 0))
n = 0
while True:
    n += 1
    s.send(struct.pack("=LHHLL", 32, 18, 1, n, 0) + struct.pack("=BxHiII", 0, 0, 1, 0, 0))
    d = s.recv(65536)
    _, typ, _, seq, _ = struct.unpack("=LHHLL", d[:16])
    with open("links", "a") as f:
        f.write("%d %d %d %d\n" % (n, s.getsockname()[0], typ, seq))
    time.sleep(0.05)
`

// TestNetlinkRoute: a program asking the kernel for links on a netlink
// route socket comes back with its port id and gets answers; `ip
// monitor`, listening to the link group in a network namespace, hears
// of a link added after its move.
func TestNetlinkRoute(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	dir, before := moveCountingPython(t, routePy, "links", 3, 3)
	lines := strings.Split(strings.TrimSpace(string(readFile(t, filepath.Join(dir, "links")))), "\n")
	port := strings.Fields(lines[before-1])[1]
	for _, l := range lines[before:] {
		f := strings.Fields(l)
		if f[1] != port || f[2] != "16" || f[3] != f[0] {
			t.Errorf("after the move: %q; want port id %s, an RTM_NEWLINK (16) answering request %s", l, port, f[0])
		}
	}

	ns := oneNetns(t, "nlmon")
	mdir := t.TempDir()
	log := filepath.Join(mdir, "log")
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	pid := startTree(t, mdir, "log", "ip", "-n", ns, "monitor", "link")
	heard := func(name string) {
		t.Helper()
		waitFor(t, 10*time.Second, func() bool { return strings.Contains(string(readFile(t, log)), name) }, "ip monitor hears of "+name)
	}
	time.Sleep(200 * time.Millisecond) // until it listens
	ip("link", "add", "procsa", "type", "veth", "peer", "name", "procsa2")
	heard("procsa")
	img := dump(t, pid, false)
	waitImageGone(t, img)
	for _, tc := range []struct {
		name  string
		edit  func(*format.Netlink)
		wants []string
	}{
		{"type", func(n *format.Netlink) { n.Type = 1 }, []string{"netlink socket", "type 1"}},
		{"group", func(n *format.Netlink) { n.Groups = append(n.Groups, 5000) }, []string{"group 5000"}},
		{"options", func(n *format.Netlink) { n.Flags |= 1 << 30 }, []string{"not netlink options"}},
		{"buffer", func(n *format.Netlink) { n.RcvBuf = -2 }, []string{"buffer sizes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := editImage(t, img, func(e *imageEdit) {
				for i := range e.Files {
					if e.Files[i].Netlink != nil {
						tc.edit(e.Files[i].Netlink)
					}
				}
			})
			refused(t, loadCmd(bad), "ip", tc.wants...)
		})
	}
	start(t, hosts.In(ns, filepath.Join(binDir, "procs-load"), img), t.TempDir())
	// Links added until it hears of one: it listens once restored.
	for i := 0; !strings.Contains(string(readFile(t, log)), "procsb"); i++ {
		if i == 40 {
			t.Fatalf("the restored ip monitor heard of no link added after the move: %s", readFile(t, log))
		}
		ip("link", "add", fmt.Sprintf("procsb%d", i), "type", "veth", "peer", "name", fmt.Sprintf("procsc%d", i))
		time.Sleep(250 * time.Millisecond)
	}
}

// ebpfPy defines udpWithEBPF, which makes a UDP socket with an eBPF
// program attached (SO_ATTACH_BPF) that drops every packet.
const ebpfPy = `
import ctypes, os, socket, struct, time
def udpWithEBPF():
    code = ctypes.create_string_buffer(struct.pack("BBhiBBhi", 0xb7, 0, 0, 0, 0x95, 0, 0, 0))  # r0 = 0; exit
    lic = ctypes.create_string_buffer(b"GPL")
    # union bpf_attr for BPF_PROG_LOAD: BPF_PROG_TYPE_SOCKET_FILTER, 2 instructions
    attr = ctypes.create_string_buffer(struct.pack("IIQQ", 1, 2, ctypes.addressof(code), ctypes.addressof(lic)), 128)
    prog = ctypes.CDLL(None, use_errno=True).syscall(321, 5, attr, 128)  # bpf(BPF_PROG_LOAD)
    if prog < 0:
        raise OSError(ctypes.get_errno(), "bpf")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, 50, struct.pack("i", prog))  # SO_ATTACH_BPF
    os.close(prog)
    return s
`

// TestSocketRefusals: raw, packet and netlink sockets other than route
// ones, and a socket with an eBPF filter, are refused by name, and the
// process runs on.
func TestSocketRefusals(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	py := victimArgv(t, "python")[0]
	for _, tc := range []struct{ name, sock, want string }{
		{"raw", "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)", "is a raw IPv4 socket"},
		{"raw6", "socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)", "is a raw IPv6 socket"},
		{"packet", "socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)", "is a packet socket"},
		{"audit", "socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)", "is a netlink socket (NETLINK_AUDIT)"},
		{"ebpf", "udpWithEBPF()", "with an eBPF filter attached (SO_ATTACH_BPF)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pid := startTree(t, dir, "log", py, "-c", ebpfPy+"\ns = "+tc.sock+"\nopen('ready', 'w').close()\ntime.sleep(1000)")
			waitFile(t, filepath.Join(dir, "ready"), filepath.Join(dir, "log"))
			refusedDump(t, pid, "fd ", tc.want)
		})
	}
}
