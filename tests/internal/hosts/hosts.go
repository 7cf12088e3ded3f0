// Package hosts makes network namespaces that stand for hosts, for the
// tests and the bench that move a server to another host with its
// address.
package hosts

import (
	"fmt"
	"os/exec"
	"strings"
)

// Three is three network namespaces: a client host C and two server
// hosts A and B, each joined to C by a veth pair, C routing between
// them. The service address S, a routed floating IP, is on A and B, and
// C reaches it through A until Move.
type Three struct {
	C, A, B string // the namespaces' names
	S       string // the service address
	IPB     string // B's own address, which A reaches through C
	netA    string // A's network: its address is netA+"2", C's netA+"1"
	netB    string // the same of B
}

// New makes Three, named after tag (a PID: what is the caller's), or
// removes what it made and says why it cannot.
func New(tag int) (*Three, error) {
	n := tag%200 + 20
	h := &Three{
		C: fmt.Sprintf("procs-tcp-%d-c", tag), A: fmt.Sprintf("procs-tcp-%d-a", tag), B: fmt.Sprintf("procs-tcp-%d-b", tag),
		netA: fmt.Sprintf("10.%d.1.", n), netB: fmt.Sprintf("10.%d.2.", n), S: fmt.Sprintf("10.%d.3.9", n),
	}
	h.IPB = h.netB + "2"
	if err := h.make(tag); err != nil {
		h.Remove()
		return nil, err
	}
	return h, nil
}

func (h *Three) make(tag int) error {
	for _, ns := range []string{h.C, h.A, h.B} {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
		if err := ip("-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	for _, x := range []struct{ ns, net, name string }{{h.A, h.netA, "a"}, {h.B, h.netB, "b"}} {
		vc, vh := fmt.Sprintf("pc%d%s", tag, x.name), fmt.Sprintf("ph%d%s", tag, x.name)
		for _, args := range [][]string{
			{"link", "add", vc, "netns", h.C, "type", "veth", "peer", "name", vh, "netns", x.ns},
			{"-n", h.C, "addr", "add", x.net + "1/24", "dev", vc},
			{"-n", x.ns, "addr", "add", x.net + "2/24", "dev", vh},
			{"-n", h.C, "link", "set", vc, "up"},
			{"-n", x.ns, "link", "set", vh, "up"},
			{"-n", x.ns, "route", "add", "default", "via", x.net + "1"},
		} {
			if err := ip(args...); err != nil {
				return err
			}
		}
	}
	// C routes A's packets to B (an image sent to B's procs-serve).
	fwd := In(h.C, "sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward")
	if out, err := exec.Command(fwd[0], fwd[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("forwarding on host C: %v: %s", err, out)
	}
	// S is on both A and B; C's route says which one serves it.
	if err := ip("-n", h.A, "addr", "add", h.S+"/32", "dev", "lo"); err != nil {
		return err
	}
	if err := ip("-n", h.B, "addr", "add", h.S+"/32", "dev", "lo"); err != nil {
		return err
	}
	return ip("-n", h.C, "route", "add", h.S+"/32", "via", h.netA+"2")
}

// Move moves S to B: C's route goes there, then A lets it go.
func (h *Three) Move() error {
	if err := ip("-n", h.C, "route", "replace", h.S+"/32", "via", h.netB+"2"); err != nil {
		return err
	}
	return ip("-n", h.A, "addr", "del", h.S+"/32", "dev", "lo")
}

// Remove removes the namespaces (and so their veth pairs).
func (h *Three) Remove() {
	for _, ns := range []string{h.C, h.A, h.B} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// In is argv run in network namespace ns.
func In(ns string, argv ...string) []string {
	return append([]string{"nsenter", "--net=/run/netns/" + ns}, argv...)
}

// ip runs ip(8) with args.
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
