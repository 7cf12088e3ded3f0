package format

import (
	"fmt"
	"time"
)

// RecordType is the type of a record. Types below 0x8000 are critical: a
// reader that does not know one rejects the image. Types from 0x8000 up
// are ancillary: a reader skips the ones it does not know.
type RecordType uint16

const (
	TypeInfo     RecordType = 0x0001 // JSON Info, always the first record
	TypeEnd      RecordType = 0x0002 // totals, always the last record
	TypePages    RecordType = 0x0003 // u32 process, u32 0, u64 address, then memory
	TypeProcess  RecordType = 0x0010 // JSON, defined by the engine: one process
	TypeFiles    RecordType = 0x0011 // JSON, defined by the engine: the image's open files
	TypeFileData RecordType = 0x0020 // u32 file id, u32 0, u64 offset, bytes

	// Page passes (the feature FeaturePagePasses; SPEC.md, "Page
	// passes"): memory written while the processes ran, before FILES.
	TypePass RecordType = 0x0012 // u32 process, u32 0, u64 address, then memory
	TypeDrop RecordType = 0x0013 // u32 process, u32 0, u64 address, u64 length

	// Ancillary is the first ancillary type.
	Ancillary RecordType = 0x8000
)

// Critical reports whether t is a critical type.
func (t RecordType) Critical() bool { return t < Ancillary }

// String returns the type's name ("PAGES"), or its number for a type
// this package does not know ("type 0x8001").
func (t RecordType) String() string {
	if d, ok := recordTypes[t]; ok {
		return d.name
	}
	return fmt.Sprintf("type 0x%04x", uint16(t))
}

const (
	// PageSize is the page size of version 2 images.
	PageSize = 4096
	// MaxPageRun is the most bytes of memory one PAGES record holds.
	MaxPageRun = 8 << 20
	// MaxFileRun is the most bytes of file contents one FILEDATA record holds.
	MaxFileRun = 8 << 20

	fileHeaderSize   = 24
	recordHeaderSize = 20
	endPayloadSize   = 28
	pagesPrefix      = 16
	fileDataPrefix   = 16

	maxInfo = 1 << 20
	maxCap  = 64 << 20 // any other type

	// MaxProcesses is the most PROCESS records (processes) an image
	// holds.
	MaxProcesses = 4096
	// MaxThreads is the most threads one process has (its "threads"
	// array; SPEC.md, Process).
	MaxThreads = 1 << 16
	// MaxMeta is the most bytes the FILES and PROCESS records of an
	// image hold together (raw payloads): what a restorer decodes and
	// keeps before anything runs.
	MaxMeta = 128 << 20

	// Version of the format this package writes and reads.
	MajorVersion = 2
	MinorVersion = 1

	// MachineX8664 is the ELF machine number of x86-64 (EM_X86_64).
	MachineX8664 = 62
	pageShift    = 12
)

type typeDesc struct {
	name   string
	maxLen int // cap on stored and raw payload length
}

// recordTypes holds every type this package knows; an engine record type
// (0x0010-0x001f) must be added here for readers to accept it.
var recordTypes = map[RecordType]typeDesc{
	TypeInfo:     {"INFO", maxInfo},
	TypeEnd:      {"END", endPayloadSize},
	TypePages:    {"PAGES", pagesPrefix + MaxPageRun},
	TypeProcess:  {"PROCESS", maxCap},
	TypeFiles:    {"FILES", maxCap},
	TypeFileData: {"FILEDATA", fileDataPrefix + MaxFileRun},
	TypePass:     {"PASS", pagesPrefix + MaxPageRun},
	TypeDrop:     {"DROP", dropSize},
}

const (
	// FeaturePagePasses is the INFO.requires name of page passes: PASS
	// and DROP records, a later copy of a page superseding an earlier
	// one (SPEC.md, "Page passes").
	FeaturePagePasses = "page-passes"
	// MaxPassAddress bounds the ranges of PASS and DROP records: the top
	// of x86-64 user space with 5-level page tables.
	MaxPassAddress = 1 << 56
	dropSize       = 24
)

// capOf returns the length cap of type t, known or not.
func capOf(t RecordType) int {
	if d, ok := recordTypes[t]; ok {
		return d.maxLen
	}
	return maxCap
}

// Info is the INFO record: what the image is, for people and listings.
type Info struct {
	Comm    string    `json:"comm"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Kernel  string    `json:"kernel"`
	Arch    string    `json:"arch"`
	Created time.Time `json:"created"`
	Procs   string    `json:"procs"`   // version of the writing tool
	Threads int       `json:"threads"` // of all processes
	// Processes is the number of processes (PROCESS records).
	Processes int `json:"processes"`
	// Requires names the features of the format that the image uses
	// and that a reader must know to restore it (see SPEC.md, "How the
	// format evolves"); a reader refuses an image that requires one it
	// does not know, naming it. Version 2.0 defines those in Features.
	Requires []string          `json:"requires,omitempty"`
	Extra    map[string]string `json:"extra,omitempty"`
}

// Summary is what Verify found in a whole image.
type Summary struct {
	Records   int   // records, counting INFO and END
	PageBytes int64 // bytes of memory in PAGES records
	Bytes     int64 // length of the image (decompressed), END included
}

// Threads says "1 thread" or "N threads", for messages about an image.
func Threads(n int) string {
	if n == 1 {
		return "1 thread"
	}
	return fmt.Sprintf("%d threads", n)
}
