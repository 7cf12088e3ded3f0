package linux

// CloneArgs is struct clone_args, clone3's argument.
type CloneArgs struct {
	Flags      uint64
	Pidfd      uint64
	ChildTID   uint64
	ParentTID  uint64
	ExitSignal uint64
	Stack      uint64
	StackSize  uint64
	TLS        uint64
	SetTID     uint64 // address of an array of pid_t
	SetTIDSize uint64
	Cgroup     uint64
}

// CLONE_ARGS_SIZE_VER2 is sizeof(struct clone_args) with cgroup, as
// clone3's size argument.
const CLONE_ARGS_SIZE_VER2 = 88

// Encode returns c in the kernel's layout.
func (c CloneArgs) Encode() []byte { return encode(c) }

// Decode reads c from b.
func (c *CloneArgs) Decode(b []byte) { decode(b[:CLONE_ARGS_SIZE_VER2], c) }
