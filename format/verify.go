package format

import "io"

// Verify reads a whole image from r and checks all of it: header,
// checksums, order, compressed payloads, the END totals. It reads no
// byte after the END record of an image that is not compressed as a whole.
func Verify(r io.Reader) (Info, Summary, error) {
	rd, err := NewReader(r)
	if err != nil {
		return Info{}, Summary{}, err
	}
	var buf []byte
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rd.Info(), Summary{}, err
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
		default:
			_, err = rd.Payload()
		}
		if err != nil {
			return rd.Info(), Summary{}, err
		}
	}
	return rd.Info(), Summary{Records: int(rd.records), PageBytes: int64(rd.pageBytes), Bytes: rd.off}, nil
}
