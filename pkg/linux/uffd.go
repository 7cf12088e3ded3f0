package linux

// userfaultfd(2) and its ioctls (include/uapi/linux/userfaultfd.h). The
// headers of Debian 12 (Linux 6.1) lack WP_ASYNC and WP_UNPOPULATED.
const (
	UFFD_USER_MODE_ONLY = 1 // flag of userfaultfd(2): faults of user mode only

	UFFD_API                    = 0xAA
	UFFD_FEATURE_WP_UNPOPULATED = 1 << 13 // what PAGEMAP_SCAN needs to protect anonymous memory
	UFFD_FEATURE_WP_ASYNC       = 1 << 15 // the kernel resolves write faults itself
	UFFDIO_REGISTER_MODE_WP     = 2

	// _IOWR(0xAA, nr, struct).
	UFFDIO_API      = 0xC018AA3F // struct uffdio_api
	UFFDIO_REGISTER = 0xC020AA00 // struct uffdio_register
)

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
