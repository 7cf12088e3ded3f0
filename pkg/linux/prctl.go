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
