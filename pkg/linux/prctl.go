package linux

// PrctlMMMap is struct prctl_mm_map, PR_SET_MM_MAP's argument. Auxv is
// the address of auxv_size bytes of auxiliary vector; ExeFD an fd of the
// new /proc/PID/exe, or -1.
type PrctlMMMap struct {
	StartCode  uint64
	EndCode    uint64
	StartData  uint64
	EndData    uint64
	StartBrk   uint64
	Brk        uint64
	StartStack uint64
	ArgStart   uint64
	ArgEnd     uint64
	EnvStart   uint64
	EnvEnd     uint64
	Auxv       uint64
	AuxvSize   uint32
	ExeFD      uint32
}

// SizeofPrctlMMMap is sizeof(struct prctl_mm_map), PR_SET_MM_MAP's
// size argument.
const SizeofPrctlMMMap = 104

// Encode returns m in the kernel's layout.
func (m PrctlMMMap) Encode() []byte { return encode(m) }

// Decode reads m from b.
func (m *PrctlMMMap) Decode(b []byte) { decode(b[:SizeofPrctlMMMap], m) }

// CapData is struct __user_cap_data_struct: 32 capabilities of each set.
type CapData struct{ Effective, Permitted, Inheritable uint32 }

// Capset is capset(2)'s two arguments side by side, version 3
// (LINUX_CAPABILITY_VERSION_3): the header, for the calling thread when
// Pid is 0, then the data of the 64 capabilities, the low 32 first,
// SizeofCapHeader bytes in.
type Capset struct {
	Version uint32
	Pid     int32
	Data    [2]CapData
}

// SizeofCapHeader is sizeof(struct __user_cap_header_struct); SizeofCapset
// the size of a Capset.
const (
	SizeofCapHeader = 8
	SizeofCapset    = SizeofCapHeader + 2*12
)

// Encode returns c in the kernel's layout.
func (c Capset) Encode() []byte { return encode(c) }

// Decode reads c from b.
func (c *Capset) Decode(b []byte) { decode(b[:SizeofCapset], c) }
