package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"procs/format"
	"procs/pkg/inject"
)

// creds gives every thread its credentials: its own when the image has
// them (a thread that changed its ids with the raw system calls, which
// change one thread only), else the process's. Each thread makes the
// calls itself, for the same reason. validate made sure this never
// raises anyone's privileges.
func (b *builder) creds() error {
	for i := range b.img.Threads {
		if err := b.dropCaps(i); err != nil {
			return fmt.Errorf("thread %d: %w", b.img.Threads[i].TID, err)
		}
		c := threadCreds(b.img, i)
		if callersCreds(c) && sameGroups(c.Groups) && (!c.NoNewPrivs || b.img.Creds.NoNewPrivs) {
			continue
		}
		r, err := b.remote(i)
		if err != nil {
			return err
		}
		if err := b.setCreds(r, c); err != nil {
			return fmt.Errorf("thread %d: %w", b.img.Threads[i].TID, err)
		}
	}
	return nil
}

// threadCreds are the credentials thread i of img must have.
func threadCreds(img *format.Process, i int) format.Creds {
	if c := img.Threads[i].Creds; c != nil {
		return *c
	}
	return img.Creds
}

// remote returns a Remote to make calls in thread i (the main thread's
// for thread 0); its registers are set at the end by finalRegs.
func (b *builder) remote(i int) (*inject.Remote, error) {
	if i == 0 {
		return b.main, nil
	}
	r, err := inject.NewRemote(b.tids[i], b.main.Insn)
	if err != nil {
		return nil, err
	}
	r.Forget()
	return r, nil
}

// setCreds makes r's thread set its groups, gids, uids (in that order:
// each needs the privileges the next one drops) and no_new_privs.
func (b *builder) setCreds(r *inject.Remote, c format.Creds) error {
	if !callersCreds(c) || !sameGroups(c.Groups) {
		groups := make([]byte, 4*len(c.Groups))
		for i, g := range c.Groups {
			binary.LittleEndian.PutUint32(groups[4*i:], uint32(g))
		}
		if len(groups) > 0 {
			if err := b.write(offBig, groups); err != nil {
				return err
			}
		}
		if _, err := r.Syscall("setgroups", unix.SYS_SETGROUPS, uint64(len(c.Groups)), b.scratch+offBig); err != nil {
			return err
		}
		if _, err := r.Syscall("setresgid", unix.SYS_SETRESGID, uint64(c.GID[0]), uint64(c.GID[1]), uint64(c.GID[2])); err != nil {
			return err
		}
		if _, err := r.Syscall("setresuid", unix.SYS_SETRESUID, uint64(c.UID[0]), uint64(c.UID[1]), uint64(c.UID[2])); err != nil {
			return err
		}
	}
	if c.NoNewPrivs && !b.img.Creds.NoNewPrivs {
		if _, err := r.Syscall("prctl(PR_SET_NO_NEW_PRIVS)", unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// sameGroups tells whether groups are this process's supplementary
// groups.
func sameGroups(groups []int) bool {
	own, err := unix.Getgroups()
	if err != nil {
		return false
	}
	return slices.Equal(slices.Sorted(slices.Values(own)), slices.Sorted(slices.Values(groups)))
}

// validateCreds refuses credentials this restorer cannot give: an
// unprivileged one gives none but its own (validate checks the ids of
// the process), and no_new_privs, which a thread can set but never
// clear, cannot be missing from a thread of a process that has it (the
// threads are made from the main thread, which sets it first).
func validateCreds(img *format.Process) error {
	for i := range img.Threads {
		c := threadCreds(img, i)
		if len(c.Groups) > 65536 {
			return fmt.Errorf("image thread %d has %d supplementary groups", i, len(c.Groups))
		}
		for _, id := range append(append(c.UID[:], c.GID[:]...), c.Groups...) {
			if id < 0 || id > 1<<32-2 {
				return fmt.Errorf("image thread %d has a user or group id %d out of range", i, id)
			}
		}
		if img.Creds.NoNewPrivs && !c.NoNewPrivs {
			return fmt.Errorf("thread %d of the process has no no_new_privs while its main thread has: procs-load cannot give that back", img.Threads[i].TID)
		}
		if os.Geteuid() != 0 && (!callersCreds(c) || !sameGroups(c.Groups)) {
			return fmt.Errorf("thread %d of the process ran as uid %d gid %d with groups %v; restoring it as uid %d with other credentials needs root (a restore never changes credentials otherwise)",
				img.Threads[i].TID, c.UID[1], c.GID[1], c.Groups[:min(len(c.Groups), 8)], os.Geteuid())
		}
	}
	return nil
}
