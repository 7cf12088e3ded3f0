package tests

// The members of exact files (format/meta.go) are untrusted input: each
// crafted out of range, in an image whose checksums hold, is refused by
// name, and nothing is started.

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"procs/format"
)

// exactImage is the image of openfiles MODE, killed at the dump.
func exactImage(t *testing.T, mode string) string {
	t.Helper()
	needTools(t)
	dir := t.TempDir()
	p := start(t, append(victimArgv(t, "openfiles"), mode, dir), dir)
	expect(t, p.out, "ready", 0)
	img, _ := dumpKilled(t, p)
	return img
}

// fileWith returns the index of the first file of p that ok accepts.
func fileWith(t *testing.T, p *imageEdit, ok func(f *format.File) bool) int {
	for i := range p.Files {
		if ok(&p.Files[i]) {
			return i
		}
	}
	t.Fatalf("no such file in the image")
	return -1
}

func carriedSparse(f *format.File) bool { return f.Extents != nil && len(*f.Extents) == 3 }

func TestExactCraftedImages(t *testing.T) {
	noLeftovers(t)
	sparse, memfd, maps := exactImage(t, "sparse"), exactImage(t, "memfd"), exactImage(t, "mapaccess")
	procself := exactImage(t, "procself")
	u32 := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		name  string
		img   string
		edit  func(p *imageEdit)
		wants []string
	}{
		{"extents-overlap", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].Extents = &[][2]int64{{0, 8192}, {4096, 16384}}
		}, []string{"data extent 4096-16384", "overlapping"}},
		{"extents-past-size", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].Extents = &[][2]int64{{0, 4096}, {1 << 40, 1<<40 + 1}}
		}, []string{"data extent", "past its size"}},
		{"extents-empty", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].Extents = &[][2]int64{{4096, 4096}}
		}, []string{"data extent 4096-4096"}},
		{"extents-uncarried", sparse, func(p *imageEdit) {
			i := fileWith(t, p, func(f *format.File) bool { return !f.Carried })
			p.Files[i].Extents = &[][2]int64{{0, 1}}
		}, []string{"data extents, and no contents"}},
		{"filedata-outside-extents", sparse, func(p *imageEdit) {
			// The data at 0 is in no extent now.
			p.Files[fileWith(t, p, carriedSparse)].Extents = &[][2]int64{{65536, 73728}}
		}, []string{"in none of its data extents"}},
		{"seals-unknown", memfd, func(p *imageEdit) {
			p.Files[fileWith(t, p, func(f *format.File) bool { return f.Seals != nil })].Seals = u32(0x40)
		}, []string{"seals 0x40"}},
		{"seals-not-memfd", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].Seals = u32(format.SealWrite)
		}, []string{"seals 0x8"}},
		{"owner-out-of-range", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].UID = 1 << 33
		}, []string{"owner 8589934592"}},
		{"times-negative", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].Atime = -5
		}, []string{"times -5"}},
		{"access-unknown", maps, func(p *imageEdit) {
			i := slices.IndexFunc(p.Maps, func(m format.Mapping) bool { return m.Access != "" })
			p.Maps[i].Access = "rwx"
		}, []string{"file access \"rwx\""}},
		{"access-private", maps, func(p *imageEdit) {
			i := slices.IndexFunc(p.Maps, func(m format.Mapping) bool { return m.Access != "" })
			p.Maps[i].Shared = false
		}, []string{"file access \"r"}},
		{"access-read-but-writable", maps, func(p *imageEdit) {
			i := slices.IndexFunc(p.Maps, func(m format.Mapping) bool { return m.Access == format.AccessRead })
			p.Maps[i].Prot |= unix.PROT_WRITE
		}, []string{"shared and writable", "read-only"}},
		{"sock-opened-for-real", sparse, func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileSocket, Path: "/tmp/sock"}, 9, unix.O_RDONLY)
		}, []string{"fd 9", "kind sock", "O_PATH"}},
		{"opath-offset", sparse, func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileSymlink, Path: "/tmp/link"}, 9, unix.O_PATH)
			p.FDs[len(p.FDs)-1].Pos = 10
		}, []string{"fd 9", "O_PATH, with an offset"}},
		{"proc-self-leaves", procself, func(p *imageEdit) {
			p.Files[fileWith(t, p, func(f *format.File) bool { return f.Self != "" })].Self = "../1/environ"
		}, []string{"\"../1/environ\"", "leaves it"}},
		{"proc-self-other-thread", procself, func(p *imageEdit) {
			p.Files[fileWith(t, p, func(f *format.File) bool { return f.Self != "" })].Self = "task/1/mem"
		}, []string{"\"task/1/mem\"", "another thread"}},
		{"proc-self-not-proc", sparse, func(p *imageEdit) {
			p.Files[fileWith(t, p, carriedSparse)].Self = "status"
		}, []string{"\"status\"", "no file of proc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, loadCmd(editImage(t, tc.img, tc.edit)), "openfiles", tc.wants...)
		})
	}
}

// TestExactCraftedAsUser: what an image of an ordinary user's process
// asks of its files is done as that user: a device node of /dev/mem, a
// memfd that would be a set-user-ID root program, are refused.
func TestExactCraftedAsUser(t *testing.T) {
	needTools(t)
	noLeftovers(t)
	u := testUser(t)
	img, _ := userImage(t, u)
	uid := fmt.Sprintf("uid %d", u.Uid)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		edit  func(p *imageEdit)
		wants []string
	}{
		{"device-node", func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileChar, Path: filepath.Join(dir, "mem"), Deleted: true,
				Rdev: unix.Mkdev(1, 1), Mode: unix.S_IFCHR | 0o666, Atime: 1}, 5, unix.O_RDWR)
		}, []string{"fd 5", "deleted device node", uid}},
		{"memfd-setuid-root", func(p *imageEdit) {
			addFD(p, format.File{Kind: format.FileMemfd, Path: "/memfd:x", Size: 4096, Carried: true,
				Seals: new(uint32(format.SealSeal)), Mode: unix.S_IFREG | 0o4755, UID: 0, GID: 0}, 5, unix.O_RDWR)
		}, []string{"memfd", "owner 0:0", "operation not permitted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refused(t, loadCmd(editImage(t, img, tc.edit), "--stdio=inherit"), "features", tc.wants...)
		})
	}
}
