package procfs

import (
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pmScanArg is struct pm_scan_arg of include/uapi/linux/fs.h (Linux 6.7).
type pmScanArg struct {
	size              uint64
	flags             uint64
	start             uint64
	end               uint64
	walkEnd           uint64
	vec               uint64
	vecLen            uint64
	maxPages          uint64
	categoryInverted  uint64
	categoryMask      uint64
	categoryAnyofMask uint64
	returnMask        uint64
}

// PageRegion is struct page_region: pages [Start, End) that share the
// reported Categories (PageIs* bits, only those asked to be returned).
type PageRegion struct {
	Start, End uint64
	Categories uint64
}

// pagemapScan is _IOWR('f', 16, struct pm_scan_arg).
const pagemapScan = 3<<30 | uintptr(unsafe.Sizeof(pmScanArg{}))<<16 | 'f'<<8 | 16

// Checked at compile time: the kernel rejects any other size.
var _ [96 - unsafe.Sizeof(pmScanArg{})]byte
var _ [unsafe.Sizeof(pmScanArg{}) - 96]byte
var _ [24 - unsafe.Sizeof(PageRegion{})]byte
var _ [unsafe.Sizeof(PageRegion{}) - 24]byte

// ioctlScan runs PAGEMAP_SCAN with arg.vec pointing at vec. It returns
// the number of regions filled.
func ioctlScan(fd uintptr, arg *pmScanArg, vec []PageRegion) (int, error) {
	arg.size = uint64(unsafe.Sizeof(*arg))
	arg.vecLen = uint64(len(vec))
	if len(vec) > 0 {
		arg.vec = uint64(uintptr(unsafe.Pointer(&vec[0])))
	}
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, pagemapScan, uintptr(unsafe.Pointer(arg)))
		runtime.KeepAlive(vec)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, os.NewSyscallError("ioctl PAGEMAP_SCAN", errno)
		}
		return int(r), nil
	}
}

// addrOf is the address of the first byte of b.
func addrOf(b []byte) uint64 { return uint64(uintptr(unsafe.Pointer(&b[0]))) }
