package format

import "io"

// Verify reads a whole image from r and checks all of it: header,
// checksums, order, compressed payloads, the END totals. It reads no
// byte after the END record of an image that is not compressed as a whole.
// It holds none of the payloads but INFO's: its memory is a few buffers
// and the window of one decompressor, whatever the records say.
func Verify(r io.Reader) (Info, Summary, error) {
	return VerifyLimits(r, Limits{})
}

// VerifyLimits is Verify with limits of the caller's.
func VerifyLimits(r io.Reader, lim Limits) (Info, Summary, error) {
	rd, err := NewReaderLimits(r, lim)
	if err != nil {
		return Info{}, Summary{}, err
	}
	for {
		_, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			err = rd.check()
		}
		if err != nil {
			return rd.Info(), Summary{}, err
		}
	}
	return rd.Info(), Summary{Records: int(rd.records), PageBytes: int64(rd.pageBytes), Bytes: rd.off}, nil
}
