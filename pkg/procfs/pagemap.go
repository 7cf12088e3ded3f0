package procfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Page categories of PAGEMAP_SCAN (PAGE_IS_* in include/uapi/linux/fs.h).
const (
	PageIsWPAllowed = 1 << 0 // in a VMA registered for async uffd write-protect
	// PageIsWPUnpopulated is another name for PageIsWPAllowed.
	PageIsWPUnpopulated = PageIsWPAllowed
	PageIsWritten       = 1 << 1 // not write-protected by userfaultfd
	PageIsFile          = 1 << 2 // page cache or shared anonymous page
	PageIsPresent       = 1 << 3
	// PageIsSwapped is set for any non-present entry: swap, but also
	// userfaultfd write-protect markers and guard pages (PageIsGuard).
	PageIsSwapped   = 1 << 4
	PageIsPFNZero   = 1 << 5 // mapped to the shared zero page
	PageIsHuge      = 1 << 6 // part of a THP or hugetlb page
	PageIsSoftDirty = 1 << 7
	PageIsGuard     = 1 << 8 // MADV_GUARD_INSTALL page (Linux 6.15+)

	// pageIsAll is what the kernel of 6.7 to 6.14 accepts.
	pageIsAll = PageIsGuard<<1 - 1
)

// Flags of PAGEMAP_SCAN (PM_SCAN_*).
const (
	PMScanWPMatching   = 1 << 0 // write-protect the pages matched
	PMScanCheckWPAsync = 1 << 1 // fail if a VMA is not registered for async WP
)

// ScanArgs are the raw masks of one PAGEMAP_SCAN. A page matches when
// c := categories ^ Inverted has every bit of Mask set, and (AnyOf is 0
// or c has a bit of AnyOf); matching pages are reported with
// categories & Return.
type ScanArgs struct {
	Flags    uint64 // PMScan*
	Inverted uint64
	Mask     uint64
	AnyOf    uint64
	Return   uint64
}

// Masks turns "any of want and none of exclude" into ScanArgs: the
// excluded bits are inverted and required (so each must be 0), want is
// the any-of set, and only the want bits are returned. For "present or
// swapped, but not the zero page": Inverted = Mask = PFNZero, AnyOf =
// Return = Present|Swapped.
func Masks(want, exclude uint64) ScanArgs {
	return ScanArgs{Inverted: exclude, Mask: exclude, AnyOf: want, Return: want}
}

// Match tells whether a page of categories c matches a.
func (a ScanArgs) Match(c uint64) bool {
	c ^= a.Inverted
	return c&a.Mask == a.Mask && (a.AnyOf == 0 || c&a.AnyOf != 0)
}

// Pagemap is an open /proc/PID/pagemap.
type Pagemap struct {
	f    *os.File
	pid  int
	vec  []PageRegion // reused output vector of the ioctl
	raw  []byte       // reused read buffer of ScanSlow
	slow bool         // the ioctl is not supported: use ScanSlow
}

// vecLen is the number of regions one ioctl may return.
const vecLen = 1024

// OpenPagemap opens /proc/PID/pagemap. Open it once per dump.
func OpenPagemap(pid int) (*Pagemap, error) {
	f, err := os.Open(pidPath(pid, "pagemap"))
	if err != nil {
		return nil, err
	}
	return &Pagemap{f: f, pid: pid}, nil
}

// Close closes the file.
func (p *Pagemap) Close() error { return p.f.Close() }

// Scan returns the regions in [start, end) whose pages have any of the
// want categories (all pages when want is 0) and none of the exclude
// categories, adjacent regions with the same categories merged.
// Categories holds the want bits the pages have. Only pages inside VMAs
// are reported, and never those of VM_PFNMAP mappings such as [vvar].
// start must be page aligned and end at most the top of user space.
//
// If the kernel lacks PAGEMAP_SCAN (ENOTTY, or EINVAL for categories it
// does not know) Scan falls back to ScanSlow, from then on.
func (p *Pagemap) Scan(start, end uint64, want, exclude uint64) ([]PageRegion, error) {
	return p.ScanWith(nil, start, end, Masks(want, exclude))
}

// ScanWith appends to dst the regions of [start, end) matching a, as Scan
// does, looping while the kernel stops early. With PMScanWPMatching the
// matched pages are write-protected as they are reported.
func (p *Pagemap) ScanWith(dst []PageRegion, start, end uint64, a ScanArgs) ([]PageRegion, error) {
	if err := checkArgs(start, a); err != nil {
		return dst, err
	}
	end = pageAlign(end)
	if p.slow && a.Flags == 0 {
		return p.scanSlow(dst, start, end, a)
	}
	if p.vec == nil {
		p.vec = make([]PageRegion, vecLen)
	}
	first := len(dst)
	for start < end {
		arg := pmScanArg{
			flags:             a.Flags,
			start:             start,
			end:               end,
			categoryInverted:  a.Inverted,
			categoryMask:      a.Mask,
			categoryAnyofMask: a.AnyOf,
			returnMask:        a.Return,
		}
		n, err := ioctlScan(p.f.Fd(), &arg, p.vec)
		if err != nil {
			if a.Flags == 0 && len(dst) == first &&
				(errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL)) {
				p.slow = true
				return p.scanSlow(dst, start, end, a)
			}
			return dst, err
		}
		if n < 0 || n > len(p.vec) {
			return dst, fmt.Errorf("PAGEMAP_SCAN returned %d regions", n)
		}
		for _, r := range p.vec[:n] {
			dst = appendRegion(dst, first, r)
		}
		if arg.walkEnd <= start && n == 0 {
			return dst, fmt.Errorf("PAGEMAP_SCAN made no progress at %#x", start)
		}
		// When the vector fills up on the last chunk it walks, the kernel
		// (6.18) reports a walk_end before the end of the regions it
		// returned: go on after both.
		next := arg.walkEnd
		if n > 0 {
			next = max(next, p.vec[n-1].End)
		}
		start = next
	}
	return dst, nil
}

// appendRegion appends r to dst, merging it into the last region (at or
// after index first) when adjacent with the same categories.
// Parts of r already reported are dropped.
func appendRegion(dst []PageRegion, first int, r PageRegion) []PageRegion {
	l := len(dst) - 1
	if l < first {
		return append(dst, r)
	}
	if r.Start < dst[l].End {
		if r.End <= dst[l].End {
			return dst
		}
		r.Start = dst[l].End
	}
	if dst[l].End == r.Start && dst[l].Categories == r.Categories {
		dst[l].End = r.End
		return dst
	}
	return append(dst, r)
}

var pageSize = uint64(os.Getpagesize())

func pageAlign(a uint64) uint64 { return (a + pageSize - 1) &^ (pageSize - 1) }

func checkArgs(start uint64, a ScanArgs) error {
	if start%pageSize != 0 {
		return fmt.Errorf("pagemap scan: start %#x is not page aligned", start)
	}
	if (a.Inverted|a.Mask|a.AnyOf|a.Return)&^pageIsAll != 0 {
		return fmt.Errorf("pagemap scan: unknown page categories %#x", (a.Inverted|a.Mask|a.AnyOf|a.Return)&^pageIsAll)
	}
	return nil
}

// Bits of a /proc/PID/pagemap entry.
const (
	pmPFN       = 1<<55 - 1
	pmSoftDirty = 1 << 55
	pmUffdWP    = 1 << 57
	pmGuard     = 1 << 58
	pmFile      = 1 << 61
	pmSwap      = 1 << 62
	pmPresent   = 1 << 63
)

// ScanSlow does what Scan does by reading /proc/PID/pagemap, 8 bytes a
// page, for kernels without PAGEMAP_SCAN. It knows the categories
// Present, Swapped, File, PFNZero (when PFNs are visible: we are root),
// Written, SoftDirty and Guard, but not Huge or WPAllowed. It reads
// /proc/PID/smaps to know the VMAs.
func (p *Pagemap) ScanSlow(start, end uint64, want, exclude uint64) ([]PageRegion, error) {
	a := Masks(want, exclude)
	if err := checkArgs(start, a); err != nil {
		return nil, err
	}
	return p.scanSlow(nil, start, pageAlign(end), a)
}

func (p *Pagemap) scanSlow(dst []PageRegion, start, end uint64, a ScanArgs) ([]PageRegion, error) {
	vmas, err := Smaps(p.pid)
	if err != nil {
		return dst, err
	}
	zero := zeroPFNs()
	if p.raw == nil {
		p.raw = make([]byte, 64<<10)
	}
	first := len(dst)
	for i := range vmas {
		v := &vmas[i]
		if v.Flags["pf"] || v.End <= start || v.Start >= end {
			continue
		}
		lo, hi := max(v.Start, start), min(v.End, end)
		for lo < hi {
			n := min((hi-lo)/pageSize, uint64(len(p.raw)/8))
			b := p.raw[:n*8]
			if _, err := p.f.ReadAt(b, int64(lo/pageSize*8)); err != nil {
				return dst, err
			}
			for j := uint64(0); j < n; j++ {
				c := entryCategories(binary.NativeEndian.Uint64(b[8*j:]), zero)
				if a.Match(c) {
					addr := lo + j*pageSize
					dst = appendRegion(dst, first, PageRegion{addr, addr + pageSize, c & a.Return})
				}
			}
			lo += n * pageSize
		}
	}
	return dst, nil
}

// entryCategories maps a pagemap entry to PAGE_IS_* bits as the kernel's
// pagemap_page_category does.
func entryCategories(e uint64, zero zeroPFN) uint64 {
	var c uint64
	switch {
	case e&pmPresent != 0:
		c |= PageIsPresent
		// pagemap says "file" for the huge zero page, PAGEMAP_SCAN not.
		if zero.is(e & pmPFN) {
			c |= PageIsPFNZero
		} else if e&pmFile != 0 {
			c |= PageIsFile
		}
	case e&pmSwap != 0:
		c |= PageIsSwapped
		if e&pmGuard != 0 {
			c |= PageIsGuard
		} else if e&pmFile != 0 {
			c |= PageIsFile
		}
	default:
		return 0
	}
	if e&pmUffdWP == 0 {
		c |= PageIsWritten
	}
	if e&pmSoftDirty != 0 {
		c |= PageIsSoftDirty
	}
	return c
}

// zeroPFN holds the page frame numbers of the zero page and of the huge
// zero page (512 frames), 0 when unknown.
type zeroPFN struct{ small, huge, hugeN uint64 }

func (z zeroPFN) is(pfn uint64) bool {
	if pfn == 0 {
		return false
	}
	return pfn == z.small || z.huge != 0 && pfn >= z.huge && pfn < z.huge+z.hugeN
}

var zeroOnce = sync.OnceValue(findZeroPFNs)

func zeroPFNs() zeroPFN { return zeroOnce() }

// findZeroPFNs learns the PFNs of the zero pages by read-faulting fresh
// anonymous memory of our own and looking at /proc/self/pagemap.
func findZeroPFNs() zeroPFN {
	var z zeroPFN
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return z
	}
	defer f.Close()
	pfnAt := func(addr uint64) uint64 {
		var b [8]byte
		if _, err := f.ReadAt(b[:], int64(addr/pageSize*8)); err != nil {
			return 0
		}
		e := binary.NativeEndian.Uint64(b[:])
		if e&pmPresent == 0 {
			return 0
		}
		return e & pmPFN
	}
	if m, err := unix.Mmap(-1, 0, int(pageSize), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		_ = readByte(m)
		z.small = pfnAt(addrOf(m))
		unix.Munmap(m)
	}
	// The huge zero page: read-fault an aligned 2 MiB of THP memory.
	const huge = 2 << 20
	if m, err := unix.Mmap(-1, 0, 2*huge, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err == nil {
		off := (huge - addrOf(m)%huge) % huge
		h := m[off : off+huge]
		if unix.Madvise(h, unix.MADV_HUGEPAGE) == nil {
			_ = readByte(h)
			if pfn := pfnAt(addrOf(h)); pfn != 0 && pfn != z.small {
				z.huge, z.hugeN = pfn, huge/pageSize
			}
		}
		unix.Munmap(m)
	}
	return z
}

// sink keeps readByte's load from being optimized away.
var sink byte

func readByte(b []byte) byte { sink += b[0]; return sink }

// AnonFrames appends to dst, for each page of [start, end) (page
// aligned), the page frame number of the private anonymous page there,
// or 0: not present, a page of a file, the zero page, or frame numbers
// hidden (they take CAP_SYS_ADMIN). Two processes whose entries for an
// address hold the same frame share that page copy-on-write (a fork).
func (p *Pagemap) AnonFrames(dst []uint64, start, end uint64) ([]uint64, error) {
	zero := zeroPFNs()
	if p.raw == nil {
		p.raw = make([]byte, 64<<10)
	}
	for lo := start; lo < end; {
		n := min((end-lo)/pageSize, uint64(len(p.raw)/8))
		b := p.raw[:n*8]
		if _, err := p.f.ReadAt(b, int64(lo/pageSize*8)); err != nil {
			return dst, err
		}
		for j := uint64(0); j < n; j++ {
			e := binary.NativeEndian.Uint64(b[8*j:])
			pfn := e & pmPFN
			if e&pmPresent == 0 || e&pmFile != 0 || zero.is(pfn) {
				pfn = 0
			}
			dst = append(dst, pfn)
		}
		lo += n * pageSize
	}
	return dst, nil
}
