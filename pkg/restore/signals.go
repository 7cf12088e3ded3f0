// Signals: what is pending, for the process and for each thread.

package restore

import (
	"fmt"

	"golang.org/x/sys/unix"

	"procs/pkg/linux"
)

// signals queues the pending signals again, from the main thread.
func (b *builder) signals() error {
	queue := func(info []byte, tid int) error {
		if len(info) != linux.SizeofSiginfo {
			return fmt.Errorf("pending signal: siginfo of %d bytes", len(info))
		}
		if err := b.write(offBig, info); err != nil {
			return err
		}
		sig := uint64(linux.SiginfoSigno(info))
		var err error
		if tid == 0 {
			_, err = b.main.Syscall("rt_sigqueueinfo", unix.SYS_RT_SIGQUEUEINFO, uint64(b.innerTID(0)), sig, b.scratch+offBig)
		} else {
			_, err = b.main.Syscall("rt_tgsigqueueinfo", unix.SYS_RT_TGSIGQUEUEINFO, uint64(b.innerTID(0)), uint64(tid), sig, b.scratch+offBig)
		}
		return err
	}
	for _, info := range b.img.Pending {
		if err := queue(info, 0); err != nil {
			return err
		}
	}
	for i, t := range b.img.Threads {
		for _, info := range t.Pending {
			if err := queue(info, b.innerTID(i)); err != nil {
				return err
			}
		}
	}
	return nil
}
