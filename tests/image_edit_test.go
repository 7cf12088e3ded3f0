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

// rewriteImage copies the image at src to dst with the JSON of its
// PROCESS record passed through edit, every other record as it was.
func rewriteImage(src, dst string, edit func(json []byte) ([]byte, error)) error {
	return rewriteImageWith(src, dst, edit, nil)
}

// rewriteImageWith is rewriteImage, with more records written by extra
// (if not nil) right after PROCESS.
func rewriteImageWith(src, dst string, edit func(json []byte) ([]byte, error), extra func(w *format.Writer) error) error {
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
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch h.Type {
		case format.TypeProcess:
			p, err := r.Payload()
			if err != nil {
				return err
			}
			if p, err = edit(p); err != nil {
				return err
			}
			if err := w.WriteRecord(format.TypeProcess, p); err != nil {
				return err
			}
			if extra != nil {
				if err := extra(w); err != nil {
					return err
				}
			}
		case format.TypePages:
			addr, data, err := r.ReadPages(buf)
			if err != nil {
				return err
			}
			if err := w.WritePages(addr, data); err != nil {
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
	return w.Close()
}

// editImage returns a copy of the image at src whose PROCESS record edit
// changed.
func editImage(t *testing.T, src string, edit func(p *format.Process)) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "edited")
	err := rewriteImage(src, dst, func(b []byte) ([]byte, error) {
		var p format.Process
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, err
		}
		edit(&p)
		return json.Marshal(&p)
	})
	if err != nil {
		t.Fatalf("rewriting %s: %v", src, err)
	}
	return dst
}
