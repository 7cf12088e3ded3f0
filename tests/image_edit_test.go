package tests

// Editing images as an attacker would: the PROCESS record changed, every
// checksum computed again by the format package's writer.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"procs/format"
)

// rewriteImage copies the image at src to dst with the JSON of its first
// PROCESS record (the root's) passed through edit, every other record as
// it was.
func rewriteImage(src, dst string, edit func(json []byte) ([]byte, error)) error {
	return rewriteImageWith(src, dst, edit, nil)
}

// rewriteImageWith is rewriteImage, with more records written by extra
// (if not nil) right after the PROCESS records.
func rewriteImageWith(src, dst string, edit func(json []byte) ([]byte, error), extra func(w *format.Writer) error) error {
	return rewriteTree(src, dst, func(files, root []byte) ([]byte, []byte, error) {
		root, err := edit(root)
		return files, root, err
	}, extra)
}

// rewriteTree copies the image at src to dst with the JSON of its FILES
// record and of its first PROCESS record passed through edit.
func rewriteTree(src, dst string, edit func(files, root []byte) ([]byte, []byte, error), extra func(w *format.Writer) error) error {
	return rewriteProcs(src, dst, func(files []byte, procs [][]byte) ([]byte, [][]byte, error) {
		files, root, err := edit(files, procs[0])
		procs[0] = root
		return files, procs, err
	}, extra)
}

// rewriteProcs copies the image at src to dst with the JSON of its FILES
// record and of all its PROCESS records passed through edit, and with more
// records written by extra (if not nil) right after the PROCESS records.
func rewriteProcs(src, dst string, edit func(files []byte, procs [][]byte) ([]byte, [][]byte, error), extra func(w *format.Writer) error) error {
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
	w, err := format.NewWriter(out, r.Info(), format.WriterOptions{})
	if err != nil {
		return err
	}
	buf := make([]byte, format.PageBufSize)
	var files []byte   // the FILES record, written with the processes
	var procs [][]byte // the PROCESS records, written once all are read
	flushed := false
	flush := func() error {
		if flushed {
			return nil
		}
		flushed = true
		files, procs, err := edit(files, procs)
		if err != nil {
			return err
		}
		if err := w.WriteRecord(format.TypeFiles, files); err != nil {
			return err
		}
		for _, p := range procs {
			if err := w.WriteRecord(format.TypeProcess, p); err != nil {
				return err
			}
		}
		if extra != nil {
			return extra(w)
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
		if h.Type != format.TypeFiles && h.Type != format.TypeProcess {
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
			return fmt.Errorf("record %d: %v, which rewriteImage does not copy", h.Index, h.Type)
		}
	}
	if err := flush(); err != nil {
		return err
	}
	return w.Close()
}

// imageEdit is what an edit of an image sees: the root's PROCESS record,
// and the image's files.
type imageEdit struct {
	*format.Process
	Files []format.File
}

// editImage returns a copy of the image at src whose root process and
// files edit changed.
func editImage(t *testing.T, src string, edit func(p *imageEdit)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "edited")
	err := rewriteTree(src, dst, func(fb, pb []byte) ([]byte, []byte, error) {
		var p format.Process
		var ft format.FileTable
		if err := json.Unmarshal(fb, &ft); err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(pb, &p); err != nil {
			return nil, nil, err
		}
		e := &imageEdit{&p, ft.Files}
		edit(e)
		ft.Files = e.Files
		if fb, err := json.Marshal(&ft); err != nil {
			return nil, nil, err
		} else if pb, err := json.Marshal(&p); err != nil {
			return nil, nil, err
		} else {
			return fb, pb, nil
		}
	}, nil)
	if err != nil {
		t.Fatalf("rewriting %s: %v", src, err)
	}
	return dst
}

// editProcs returns a copy of the image at src whose processes and files
// edit changed (it may add or remove processes: the PAGES records stay
// with the task numbers they had).
func editProcs(t *testing.T, src string, edit func(procs *[]format.Process, files *[]format.File)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "edited")
	err := rewriteProcs(src, dst, func(fb []byte, pbs [][]byte) ([]byte, [][]byte, error) {
		var ft format.FileTable
		if err := json.Unmarshal(fb, &ft); err != nil {
			return nil, nil, err
		}
		ps := make([]format.Process, len(pbs))
		for i, pb := range pbs {
			if err := json.Unmarshal(pb, &ps[i]); err != nil {
				return nil, nil, err
			}
		}
		edit(&ps, &ft.Files)
		fb, err := json.Marshal(&ft)
		if err != nil {
			return nil, nil, err
		}
		pbs = pbs[:0]
		for i := range ps {
			// Every member, a zombie's zero ones too.
			pb, err := json.Marshal(&ps[i])
			if err != nil {
				return nil, nil, err
			}
			pbs = append(pbs, pb)
		}
		return fb, pbs, nil
	}, nil)
	if err != nil {
		t.Fatalf("rewriting %s: %v", src, err)
	}
	return dst
}
