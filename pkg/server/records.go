package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"procs/format"
	"procs/pkg/api"
)

// errNoRecords says why an image's records cannot be listed for reading
// by parts.
var errNoRecords = errors.New("its records cannot be listed")

// records handles GET /v1/images/{id}/records: where each record of the
// image lies (see api.Record), read from the record headers of the
// stored file, which the upload verified. An image compressed as a
// whole, or with compressed memory records, whose places and addresses
// cannot be told without decompressing it, is answered 409: its reader
// streams it whole.
func (s *Server) records(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := s.lookup(id); !ok || !api.ValidID(id) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("no image %q", id))
		return
	}
	f, err := s.root.Open(id + imgSuffix)
	if err != nil {
		httpError(w, http.StatusNotFound, "no image "+id)
		return
	}
	defer f.Close()
	recs, err := listRecords(f)
	if errors.Is(err, errNoRecords) {
		httpError(w, http.StatusConflict, "image "+id+": "+err.Error())
		return
	}
	if err != nil {
		s.logf("records of %s: %v", id, err)
		httpError(w, http.StatusInternalServerError, "cannot read image")
		return
	}
	writeJSON(w, http.StatusOK, recs)
}

// listRecords walks the record headers of the image in f.
func listRecords(f *os.File) ([]api.Record, error) {
	var head [24]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return nil, err
	}
	if string(head[:8]) != format.Magic {
		return nil, fmt.Errorf("%w: it is compressed as a whole", errNoRecords)
	}
	var recs []api.Record
	var h [20 + 24]byte
	for off := int64(len(head)); ; {
		if len(recs) == api.MaxRecords {
			return nil, fmt.Errorf("%w: it has more than %d", errNoRecords, api.MaxRecords)
		}
		n, err := f.ReadAt(h[:], off)
		if n < 20 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		typ := format.RecordType(binary.LittleEndian.Uint16(h[0:]))
		flags := binary.LittleEndian.Uint16(h[2:])
		stored := int64(binary.LittleEndian.Uint32(h[4:]))
		raw := binary.LittleEndian.Uint32(h[8:])
		rec := api.Record{Offset: off, Size: 20 + stored, Type: uint16(typ)}
		switch typ {
		case format.TypePages, format.TypePass, format.TypeDrop:
			if flags != 0 {
				return nil, fmt.Errorf("%w: its memory records are compressed", errNoRecords)
			}
			if need := map[bool]int{false: 36, true: 44}[typ == format.TypeDrop]; n < need {
				return nil, io.ErrUnexpectedEOF
			}
			rec.Task = binary.LittleEndian.Uint32(h[20:])
			rec.Addr = binary.LittleEndian.Uint64(h[28:])
			rec.Len = uint64(raw) - 16
			if typ == format.TypeDrop {
				rec.Len = binary.LittleEndian.Uint64(h[36:])
			}
		}
		recs = append(recs, rec)
		if typ == format.TypeEnd {
			return recs, nil
		}
		off += rec.Size
	}
}
