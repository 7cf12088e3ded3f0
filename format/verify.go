package format

import "io"

// Verify reads a whole image from r and checks all of it: header,
// checksums, order, compressed payloads, the END totals. It reads no
// byte after the END record of an image that is not compressed as a whole.
// It holds none of the payloads but INFO's and PROCESS's: its memory is a
// few buffers, the window of one decompressor and one PROCESS record,
// whatever the records say.
func Verify(r io.Reader) (Info, Summary, error) {
	info, sum, _, err := VerifyCreds(r, Limits{})
	return info, sum, err
}

// VerifyLimits is Verify with limits of the caller's.
func VerifyLimits(r io.Reader, lim Limits) (Info, Summary, error) {
	info, sum, _, err := VerifyCreds(r, lim)
	return info, sum, err
}

// processDecodes bounds how many PROCESS records VerifyCreds holds at
// once in this program (each up to the record cap): a server verifying
// many uploads at once holds at most this many, whatever they are.
var processDecodes = make(chan struct{}, 2)

// VerifyCreds is VerifyLimits that also returns the credentials of each
// PROCESS record, in order, read as a restorer reads them (same type,
// same decoder: a record without "creds" says uid 0), so that whoever
// stores an image can tell whom it would run as. A PROCESS record that is
// not valid JSON is refused.
func VerifyCreds(r io.Reader, lim Limits) (Info, Summary, []Creds, error) {
	rd, err := NewReaderLimits(r, lim)
	if err != nil {
		return Info{}, Summary{}, nil, err
	}
	var creds []Creds
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			if h.Type == TypeProcess {
				var p struct {
					Creds Creds `json:"creds"`
				}
				processDecodes <- struct{}{}
				if err = rd.DecodeJSON(&p); err == nil {
					creds = append(creds, p.Creds)
				}
				<-processDecodes
			} else {
				err = rd.check()
			}
		}
		if err != nil {
			return rd.Info(), Summary{}, nil, err
		}
	}
	return rd.Info(), Summary{Records: int(rd.records), PageBytes: int64(rd.pageBytes), Bytes: rd.off}, creds, nil
}
