package tests

// Editing images as an attacker would: INFO, the FILES record, any
// PROCESS record, PAGES records added, every checksum computed again by
// the format package's writer (or, for what that writer refuses to write,
// by patchRecords).

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	"procs/format"
)

// pageRun is a PAGES record to add to an image.
type pageRun struct {
	task uint32
	addr uint64
	data []byte
}

// imageRewrite says how rewriteAll changes an image; a nil member
// changes nothing.
type imageRewrite struct {
	// info changes the INFO record.
	info func(*format.Info)
	// edit changes the JSON of the FILES record and of the PROCESS
	// records, root first (it may drop or add some).
	edit func(files []byte, procs [][]byte) ([]byte, [][]byte, error)
	// extra writes more records right after the PROCESS records.
	extra func(w *format.Writer) error
	// pages are PAGES records to add, each where the order of (task,
	// address) puts it among the image's own (before a record of its
	// task at the same address).
	pages []pageRun
}

// rewriteImage copies the image at src to dst with the JSON of its first
// PROCESS record (the root's) passed through edit, every other record as
// it was.
func rewriteImage(src, dst string, edit func(json []byte) ([]byte, error)) error {
	return rewriteImageWith(src, dst, edit, nil)
}

// rewriteImageWith is rewriteImage, with more records written by extra
// (if not nil) right after the PROCESS records.
func rewriteImageWith(src, dst string, edit func(json []byte) ([]byte, error), extra func(w *format.Writer) error) error {
	return rewriteAll(src, dst, imageRewrite{
		edit: func(files []byte, procs [][]byte) ([]byte, [][]byte, error) {
			root, err := edit(procs[0])
			procs[0] = root
			return files, procs, err
		},
		extra: extra,
	})
}

// rewriteAll copies the image at src to dst, changed as rw says, with
// correct checksums.
func rewriteAll(src, dst string, rw imageRewrite) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := format.NewReader(in)
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	info := r.Info()
	if rw.info != nil {
		rw.info(&info)
	}
	w, err := format.NewWriter(out, info, format.WriterOptions{})
	if err != nil {
		return err
	}
	buf := make([]byte, format.PageBufSize)
	var files []byte
	var procs [][]byte
	written := false // the FILES and PROCESS records
	pages := rw.pages
	// flush writes the FILES and PROCESS records, edited, and extra,
	// once all PROCESS records are read.
	flush := func() error {
		if written {
			return nil
		}
		written = true
		if rw.edit != nil {
			if files, procs, err = rw.edit(files, procs); err != nil {
				return err
			}
		}
		if err := w.WriteRecord(format.TypeFiles, files); err != nil {
			return err
		}
		for _, p := range procs {
			if err := w.WriteRecord(format.TypeProcess, p); err != nil {
				return err
			}
		}
		if rw.extra != nil {
			return rw.extra(w)
		}
		return nil
	}
	// addPages writes the added runs that come before (task, addr).
	addPages := func(task uint32, addr uint64) error {
		for len(pages) > 0 && (pages[0].task < task || pages[0].task == task && pages[0].addr <= addr) {
			if err := w.WritePages(pages[0].task, pages[0].addr, pages[0].data); err != nil {
				return err
			}
			pages = pages[1:]
		}
		return nil
	}
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if h.Type != format.TypeProcess && h.Type != format.TypeFiles {
			if err := flush(); err != nil {
				return err
			}
		}
		switch h.Type {
		case format.TypeFiles:
			if files, err = r.Payload(); err != nil {
				return err
			}
		case format.TypeProcess:
			p, err := r.Payload()
			if err != nil {
				return err
			}
			procs = append(procs, p)
		case format.TypePages:
			task, addr, data, err := r.ReadPages(buf)
			if err != nil {
				return err
			}
			if err := addPages(task, addr); err != nil {
				return err
			}
			if err := w.WritePages(task, addr, data); err != nil {
				return err
			}
		case format.TypeFileData:
			idx, off, data, err := r.ReadFileData(buf)
			if err != nil {
				return err
			}
			if err := w.WriteFileData(idx, off, data); err != nil {
				return err
			}
		default:
			return fmt.Errorf("record %d: %v, which rewriteAll does not copy", h.Index, h.Type)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := addPages(^uint32(0), ^uint64(0)); err != nil {
		return err
	}
	return w.Close()
}

// treeEdit is what an edit of a tree's image sees: every process, the
// root first, and the image's files.
type treeEdit struct {
	Procs []format.Process
	Files []format.File
}

// imageEdit is what an edit of a single process's image sees: the
// root's PROCESS record, and the image's files.
type imageEdit struct {
	*format.Process
	Files []format.File
}

// editImage returns a copy of the image at src whose root process and
// files edit changed.
func editImage(t *testing.T, src string, edit func(p *imageEdit)) string {
	t.Helper()
	return editTree(t, src, func(e *treeEdit) {
		p := &imageEdit{&e.Procs[0], e.Files}
		edit(p)
		e.Files = p.Files
	})
}

// editTree returns a copy of the image at src whose processes and files
// edit changed.
func editTree(t *testing.T, src string, edit func(e *treeEdit)) string {
	t.Helper()
	return craftImage(t, src, imageRewrite{edit: treeEditor(edit)})
}

// editProcs is editTree for an edit of the processes and the files.
func editProcs(t *testing.T, src string, edit func(procs *[]format.Process, files *[]format.File)) string {
	t.Helper()
	return editTree(t, src, func(e *treeEdit) { edit(&e.Procs, &e.Files) })
}

// treeEditor makes an imageRewrite.edit of edit.
func treeEditor(edit func(e *treeEdit)) func([]byte, [][]byte) ([]byte, [][]byte, error) {
	return func(fb []byte, pbs [][]byte) ([]byte, [][]byte, error) {
		var ft format.FileTable
		if err := json.Unmarshal(fb, &ft); err != nil {
			return nil, nil, err
		}
		e := &treeEdit{Files: ft.Files}
		for _, pb := range pbs {
			var p format.Process
			if err := json.Unmarshal(pb, &p); err != nil {
				return nil, nil, err
			}
			e.Procs = append(e.Procs, p)
		}
		edit(e)
		ft.Files = e.Files
		fb, err := json.Marshal(&ft)
		if err != nil {
			return nil, nil, err
		}
		pbs = pbs[:0]
		for i := range e.Procs {
			pb, err := json.Marshal(&e.Procs[i])
			if err != nil {
				return nil, nil, err
			}
			pbs = append(pbs, pb)
		}
		return fb, pbs, nil
	}
}

// craftImage returns a copy of the image at src changed as rw says.
func craftImage(t *testing.T, src string, rw imageRewrite) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "edited")
	if err := rewriteAll(src, dst, rw); err != nil {
		t.Fatalf("rewriting %s: %v", src, err)
	}
	return dst
}

// patchRecords changes the image at path, whose records must be stored
// uncompressed (as rewriteAll writes them), in place: patch may change
// the payload of each record but END (not its length), and each changed
// record's checksums and the END record's chain checksum are made right
// again. It writes what the format's writer refuses to (a PAGES record of
// a process the image lacks).
func patchRecords(path string, patch func(t format.RecordType, payload []byte)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	crc := func(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }
	var chain []byte
	off := 24 // the file header
	for {
		if off+20 > len(b) {
			return fmt.Errorf("no END record")
		}
		h := b[off : off+20]
		typ := format.RecordType(binary.LittleEndian.Uint16(h))
		flags, stored := binary.LittleEndian.Uint16(h[2:]), int(binary.LittleEndian.Uint32(h[4:]))
		payload := b[off+20 : off+20+stored]
		if typ == format.TypeEnd {
			binary.LittleEndian.PutUint32(payload[24:], crc(chain))
			return os.WriteFile(path, b, 0o600)
		}
		if flags != 0 {
			return fmt.Errorf("record at %d is compressed", off)
		}
		patch(typ, payload)
		binary.LittleEndian.PutUint32(h[12:], crc(payload))
		binary.LittleEndian.PutUint32(h[16:], crc(h[:16]))
		chain = append(chain, h[16:20]...)
		off += 20 + stored
	}
}
