package format

import "io"

// Verify reads a whole image from r and checks all of it: header,
// checksums, order, compressed payloads, the END totals. It reads no
// byte after the END record of an image that is not compressed as a whole.
func Verify(r io.Reader) (Info, Summary, error) {
	info, sum, _, err := VerifyCreds(r)
	return info, sum, err
}

// VerifyCreds is Verify that also returns the credentials of each PROCESS
// record, in order, read as a restorer reads them (same type, same
// decoder: a record without "creds" says uid 0), so that whoever stores
// an image can tell whom it would run as.
func VerifyCreds(r io.Reader) (Info, Summary, []Creds, error) {
	rd, err := NewReader(r)
	if err != nil {
		return Info{}, Summary{}, nil, err
	}
	var buf []byte
	var creds []Creds
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rd.Info(), Summary{}, nil, err
		}
		switch h.Type {
		case TypePages, TypeFileData:
			if buf == nil {
				buf = make([]byte, PageBufSize+fileDataPrefix)
			}
			if h.Type == TypePages {
				_, _, err = rd.ReadPages(buf)
			} else {
				_, _, _, err = rd.ReadFileData(buf)
			}
		case TypeProcess:
			var p struct {
				Creds Creds `json:"creds"`
			}
			if err = rd.DecodeJSON(&p); err == nil {
				creds = append(creds, p.Creds)
			}
		default:
			_, err = rd.Payload()
		}
		if err != nil {
			return rd.Info(), Summary{}, nil, err
		}
	}
	return rd.Info(), Summary{Records: int(rd.records), PageBytes: int64(rd.pageBytes), Bytes: rd.off}, creds, nil
}
