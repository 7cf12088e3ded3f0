package restore

// Process attributes that come back exactly: oom_score_adj, THP
// disabling, membarrier registrations, locked and droppable memory; and
// the checks that refuse an image asking for what this restorer cannot
// give.

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/linux"
	"procs/pkg/safetext"
)

// The smaps VmFlags a mapping's advice may hold, all of which procs-load
// puts back: gd and dp at mmap, ac by the way it maps and protects, lo
// and lf with mlock2, the others with madvise.
var knownAdvice = map[string]bool{"gd": true, "ac": true, "dc": true, "dd": true, "hg": true,
	"nh": true, "wf": true, "mg": true, "lo": true, "lf": true, "dp": true}

// membarrierKnown are the membarrier registrations procs-load makes
// again: the MEMBARRIER_CMD_REGISTER_* commands, which
// MEMBARRIER_CMD_GET_REGISTRATIONS reports as their own bits.
const membarrierKnown = linux.MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED | linux.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED |
	linux.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE | linux.MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ

// validateExact range-checks what the image asks of this section.
func validateExact(img *format.Process) error {
	if v := img.OomScoreAdj; v != nil && (*v < -1000 || *v > 1000) {
		return fmt.Errorf("image oom_score_adj %d is out of range [-1000, 1000]", *v)
	}
	if v := img.THPDisable; v != nil && *v != 0 && *v != 1 && *v != 1|unix.PR_THP_DISABLE_EXCEPT_ADVISED {
		return fmt.Errorf("image thp_disable %d is not one this procs-load knows", *v)
	}
	if img.Membarrier&^membarrierKnown != 0 {
		return fmt.Errorf("image membarrier registrations %#x hold some this procs-load does not know", img.Membarrier)
	}
	for _, m := range img.Maps {
		for _, a := range m.Advice {
			if !knownAdvice[a] {
				return fmt.Errorf("image mapping %x-%x has flag %s, which this procs-load cannot give back", m.Start, m.End, safetext.Quote(a))
			}
		}
		if hasAdvice(m, "dp") && (m.Shared || m.File >= 0 || m.Kind != format.MapAnon) {
			return fmt.Errorf("image mapping %x-%x is droppable but not private anonymous memory", m.Start, m.End)
		}
	}
	if err := validateRoot(img); err != nil {
		return err
	}
	if err := validateSeccomp(img); err != nil {
		return err
	}
	if err := validateCreds(img); err != nil {
		return err
	}
	return validateSched(img)
}

// mapFlags gives mapping m the flags it had that madvise does not set:
// locked (lo, and lf for MLOCK_ONFAULT). Locking is done in the process,
// before it drops its privileges: as the original did, within its
// RLIMIT_MEMLOCK (or with CAP_IPC_LOCK).
func (b *builder) mapFlags(m format.Mapping) error {
	if !hasAdvice(m, "lo") && !hasAdvice(m, "lf") {
		return nil
	}
	flags := uint64(0)
	if hasAdvice(m, "lf") {
		flags = unix.MLOCK_ONFAULT
	}
	_, err := b.main.Syscall(fmt.Sprintf("mlock2 %x-%x", m.Start, m.End), unix.SYS_MLOCK2, m.Start, m.End-m.Start, flags)
	return err
}

// exactProcess sets the process's THP disabling and membarrier
// registrations (in the process), and its oom_score_adj (from here).
func (b *builder) exactProcess() error {
	img := b.img
	r := b.main
	if v := img.THPDisable; v != nil {
		if _, err := r.Syscall("prctl(PR_SET_THP_DISABLE)", unix.SYS_PRCTL, unix.PR_SET_THP_DISABLE, uint64(*v&1), uint64(*v&^1), 0, 0); err != nil {
			return err
		}
	}
	for bit := uint32(1); bit != 0 && bit <= img.Membarrier; bit <<= 1 {
		if img.Membarrier&bit == 0 {
			continue
		}
		if _, err := r.Syscall(fmt.Sprintf("membarrier(register %#x)", bit), unix.SYS_MEMBARRIER, uint64(bit), 0, 0); err != nil {
			return err
		}
	}
	if err := b.chroot(); err != nil {
		return err
	}
	if v := img.OomScoreAdj; v != nil {
		err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", b.pid), []byte(fmt.Sprint(*v)), 0)
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return fmt.Errorf("the process had oom_score_adj %d, which procs-load may not give it here (lowering it needs CAP_SYS_RESOURCE)", *v)
		}
		if err != nil {
			return fmt.Errorf("oom_score_adj %d: %w", *v, err)
		}
	}
	return nil
}
