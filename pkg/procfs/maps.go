package procfs

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// Mapping is one line of /proc/PID/maps, with the fields of
// /proc/PID/smaps when read by Smaps.
type Mapping struct {
	Start, End                uint64
	Perms                     string // "rwxp" as in maps
	Read, Write, Exec, Shared bool
	Offset                    uint64
	Dev                       uint64 // unix.Mkdev(major, minor)
	Inode                     uint64
	// Path is "" for anonymous memory; "[heap]", "[stack]", "[vdso]",
	// "[vvar]", "[vvar_vclock]", "[vsyscall]", "[anon:name]"; or a file
	// path with any " (deleted)" suffix removed (Deleted is then true).
	Path    string
	Deleted bool

	// From /proc/PID/smaps only (Smaps): VmFlags as a set of two-letter
	// names ("rd", "wr", "gd" grows down, "dd" don't dump, "ht", "nh",
	// "mg", "sd", "wf", "pf" pfn map...), and sizes in bytes.
	Flags         map[string]bool
	AnonHugePages uint64
	Rss           uint64
	// Anonymous is the bytes of present anonymous pages: for a private
	// mapping of a file, the pages copied on write. The shared zero
	// page is not counted.
	Anonymous uint64
	// SharedPages is the bytes of present pages that another process
	// maps too (Shared_Clean and Shared_Dirty): of a private mapping, a
	// file's pages, or anonymous pages shared copy-on-write since a fork.
	SharedPages uint64
}

// Len is End-Start.
func (m *Mapping) Len() uint64 { return m.End - m.Start }

// Contains tells whether addr lies in [Start, End).
func (m *Mapping) Contains(addr uint64) bool { return addr >= m.Start && addr < m.End }

const deletedSuffix = " (deleted)"

// permStrings interns the 16 possible permission strings.
var permStrings [16]string

func init() {
	for i := range permStrings {
		b := []byte("---p")
		if i&1 != 0 {
			b[0] = 'r'
		}
		if i&2 != 0 {
			b[1] = 'w'
		}
		if i&4 != 0 {
			b[2] = 'x'
		}
		if i&8 != 0 {
			b[3] = 's'
		}
		permStrings[i] = string(b)
	}
}

// Maps parses /proc/PID/maps.
func Maps(pid int) ([]Mapping, error) {
	return readMaps(pidPath(pid, "maps"), false)
}

// Smaps parses /proc/PID/smaps: the same as Maps plus Flags, Rss,
// Anonymous and AnonHugePages. It is slower: the kernel walks the page tables.
func Smaps(pid int) ([]Mapping, error) {
	return readMaps(pidPath(pid, "smaps"), true)
}

func readMaps(path string, smaps bool) ([]Mapping, error) {
	buf := getBuf()
	defer putBuf(buf)
	b, err := readInto(path, buf)
	if err != nil {
		return nil, err
	}
	return parseMaps(path, b, smaps)
}

// parseMaps parses the contents of a maps or smaps file.
func parseMaps(path string, b []byte, smaps bool) ([]Mapping, error) {
	n := 0
	if !smaps {
		n = bytes.Count(b, []byte{'\n'}) + 1
	}
	ms := make([]Mapping, 0, n)
	paths := make(map[string]string)
	for len(b) > 0 {
		var line []byte
		line, b = nextLine(b)
		if len(line) == 0 {
			continue
		}
		if smaps && len(ms) > 0 && isSmapsKey(line) {
			if err := parseSmapsLine(&ms[len(ms)-1], line); err != nil {
				return nil, parseError(path, line)
			}
			continue
		}
		var m Mapping
		if !parseMapsLine(&m, line, paths) {
			return nil, parseError(path, line)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// isSmapsKey tells a "Key: value" line of smaps from a mapping header,
// whose first field is "start-end".
func isSmapsKey(line []byte) bool {
	f, _ := field(line)
	return len(f) > 0 && f[len(f)-1] == ':'
}

func parseMapsLine(m *Mapping, line []byte, paths map[string]string) bool {
	f, rest := field(line)
	i := bytes.IndexByte(f, '-')
	if i < 0 {
		return false
	}
	var ok1, ok2 bool
	m.Start, ok1 = parseUint(f[:i], 16)
	m.End, ok2 = parseUint(f[i+1:], 16)
	if !ok1 || !ok2 {
		return false
	}
	f, rest = field(rest)
	if len(f) != 4 {
		return false
	}
	pi := 0
	if f[0] == 'r' {
		m.Read = true
		pi |= 1
	}
	if f[1] == 'w' {
		m.Write = true
		pi |= 2
	}
	if f[2] == 'x' {
		m.Exec = true
		pi |= 4
	}
	if f[3] == 's' {
		m.Shared = true
		pi |= 8
	}
	m.Perms = permStrings[pi]
	f, rest = field(rest)
	if m.Offset, ok1 = parseUint(f, 16); !ok1 {
		return false
	}
	f, rest = field(rest)
	i = bytes.IndexByte(f, ':')
	if i < 0 {
		return false
	}
	maj, ok1 := parseUint(f[:i], 16)
	min, ok2 := parseUint(f[i+1:], 16)
	if !ok1 || !ok2 {
		return false
	}
	m.Dev = unix.Mkdev(uint32(maj), uint32(min))
	f, rest = field(rest)
	if m.Inode, ok1 = parseUint(f, 10); !ok1 {
		return false
	}
	// The path is the rest after the padding; it may contain spaces.
	for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
		rest = rest[1:]
	}
	if len(rest) == 0 {
		return true
	}
	if rest[0] != '[' && bytes.HasSuffix(rest, []byte(deletedSuffix)) {
		m.Deleted = true
		rest = rest[:len(rest)-len(deletedSuffix)]
	}
	if s, ok := paths[string(rest)]; ok {
		m.Path = s
	} else {
		s := string(rest)
		paths[s] = s
		m.Path = s
	}
	return true
}

func parseSmapsLine(m *Mapping, line []byte) error {
	key, rest := field(line)
	key = key[:len(key)-1]
	switch string(key) {
	case "Rss", "AnonHugePages", "Anonymous", "Shared_Clean", "Shared_Dirty":
		f, rest := field(rest)
		v, ok := parseUint(f, 10)
		if !ok {
			return errSyntax
		}
		if u, _ := field(rest); string(u) == "kB" {
			v <<= 10
		}
		switch string(key) {
		case "Rss":
			m.Rss = v
		case "Anonymous":
			m.Anonymous = v
		case "Shared_Clean", "Shared_Dirty":
			m.SharedPages += v
		default:
			m.AnonHugePages = v
		}
	case "VmFlags":
		m.Flags = make(map[string]bool, 16)
		for {
			var f []byte
			f, rest = field(rest)
			if len(f) == 0 {
				break
			}
			m.Flags[vmFlagName(f)] = true
		}
	}
	return nil
}

// vmFlagNames interns the VmFlags names the kernel prints.
var vmFlagNames = func() map[string]string {
	names := []string{"rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd",
		"pf", "lo", "io", "sr", "rr", "dc", "de", "ac", "nr", "ht", "sf",
		"nl", "ar", "wf", "dd", "mm", "hg", "nh", "mg", "um", "uw", "ss",
		"sl", "bt", "mt", "ui", "lf", "sd"}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}()

func vmFlagName(f []byte) string {
	if s, ok := vmFlagNames[string(f)]; ok {
		return s
	}
	return string(f)
}
