package linux

// userfaultfd(2) and its ioctls (include/uapi/linux/userfaultfd.h). The
// headers of Debian 12 (Linux 6.1) lack WP_ASYNC and WP_UNPOPULATED.
const (
	UFFD_USER_MODE_ONLY = 1 // flag of userfaultfd(2): faults of user mode only

	UFFD_API                     = 0xAA
	UFFD_FEATURE_WP_UNPOPULATED  = 1 << 13 // what PAGEMAP_SCAN needs to protect anonymous memory
	UFFD_FEATURE_WP_ASYNC        = 1 << 15 // the kernel resolves write faults itself
	UFFDIO_REGISTER_MODE_MISSING = 1
	UFFDIO_REGISTER_MODE_WP      = 2

	// Events a lazy restore follows (non-cooperative): a fork (the
	// child gets a userfaultfd of its own), an mremap, an madvise that
	// drops pages, an munmap.
	UFFD_FEATURE_EVENT_FORK   = 1 << 1
	UFFD_FEATURE_EVENT_REMAP  = 1 << 2
	UFFD_FEATURE_EVENT_REMOVE = 1 << 3
	UFFD_FEATURE_EVENT_UNMAP  = 1 << 6

	UFFD_EVENT_PAGEFAULT = 0x12
	UFFD_EVENT_FORK      = 0x13
	UFFD_EVENT_REMAP     = 0x14
	UFFD_EVENT_REMOVE    = 0x15
	UFFD_EVENT_UNMAP     = 0x16

	// _IOWR(0xAA, nr, struct), _IOR for WAKE.
	UFFDIO_API      = 0xC018AA3F // struct uffdio_api
	UFFDIO_REGISTER = 0xC020AA00 // struct uffdio_register
	UFFDIO_WAKE     = 0x8010AA02 // struct uffdio_range
	UFFDIO_COPY     = 0xC028AA03 // struct uffdio_copy
	UFFDIO_ZEROPAGE = 0xC020AA04 // struct uffdio_zeropage
	// UFFDIO_WRITEPROTECT, struct uffdio_writeprotect (a range and a
	// mode), asks nothing of a range not registered for it: a lazy
	// restore asks whether a process is gone with it (uffd.FD.Gone).
	UFFDIO_WRITEPROTECT               = 0xC018AA06
	UFFDIO_WRITEPROTECT_MODE_DONTWAKE = 1 << 1

	// SizeofUffdMsg is the size of struct uffd_msg, what read(2)
	// returns per event.
	SizeofUffdMsg = 32
)

// UffdioCopy is struct uffdio_copy: Len bytes from Src (an address of
// the caller's) to Dst (of the watched process); Copy is what the
// kernel copied, or a negative errno.
type UffdioCopy struct {
	Dst, Src, Len, Mode uint64
	Copy                int64
}

// SizeofUffdioCopy is the size of struct uffdio_copy.
const SizeofUffdioCopy = 40

func (c UffdioCopy) Encode() []byte   { return encode(c) }
func (c *UffdioCopy) Decode(b []byte) { decode(b[:SizeofUffdioCopy], c) }

// UffdioZeropage is struct uffdio_zeropage: a range, a mode, and what
// the kernel mapped (or a negative errno).
type UffdioZeropage struct {
	Start, Len, Mode uint64
	Zeropage         int64
}

func (z UffdioZeropage) Encode() []byte { return encode(z) }

// UffdioWriteprotect is struct uffdio_writeprotect.
type UffdioWriteprotect struct{ Start, Len, Mode uint64 }

func (w UffdioWriteprotect) Encode() []byte { return encode(w) }

// UffdioRange is struct uffdio_range.
type UffdioRange struct{ Start, Len uint64 }

func (r UffdioRange) Encode() []byte { return encode(r) }

// UffdMsg is the part of struct uffd_msg a lazy restore reads: the
// event and its first three words (a fault's flags and address; a
// fork's fd; a remap's from, to and length; a remove's or unmap's start
// and end).
type UffdMsg struct {
	Event uint8
	_     [7]byte
	Arg   [3]uint64
}

func (m *UffdMsg) Decode(b []byte) { decode(b[:SizeofUffdMsg], m) }

// UffdioAPI is struct uffdio_api.
type UffdioAPI struct {
	API      uint64
	Features uint64
	Ioctls   uint64
}

// SizeofUffdioAPI is the size of struct uffdio_api.
const SizeofUffdioAPI = 24

func (a UffdioAPI) Encode() []byte   { return encode(a) }
func (a *UffdioAPI) Decode(b []byte) { decode(b[:SizeofUffdioAPI], a) }

// UffdioRegister is struct uffdio_register: a range and a mode.
type UffdioRegister struct {
	Start, Len uint64
	Mode       uint64
	Ioctls     uint64
}

// SizeofUffdioRegister is the size of struct uffdio_register.
const SizeofUffdioRegister = 32

func (r UffdioRegister) Encode() []byte   { return encode(r) }
func (r *UffdioRegister) Decode(b []byte) { decode(b[:SizeofUffdioRegister], r) }
