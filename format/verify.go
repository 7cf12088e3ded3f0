package format

import (
	"bufio"
	"errors"
	"io"
)

// Verify reads a whole image from r and checks all of it: header,
// checksums, order, compressed payloads, the END totals. It reads no
// byte after the END record of an image that is not compressed as a whole.
// It holds none of the payloads but INFO's: its memory is a few buffers
// and the window of one decompressor, whatever the records say.
func Verify(r io.Reader) (Info, Summary, error) {
	info, sum, _, err := VerifyCreds(r, Limits{})
	return info, sum, err
}

// VerifyLimits is Verify with limits of the caller's.
func VerifyLimits(r io.Reader, lim Limits) (Info, Summary, error) {
	info, sum, _, err := VerifyCreds(r, lim)
	return info, sum, err
}

// VerifyCreds is VerifyLimits that also returns the credentials of each
// PROCESS record, in order, as a restorer decoding it would see them
// (the same type and member matching: a record without "creds" says
// uid 0), so that whoever stores an image can tell whom it would run as.
// It reads them as the payload streams (see scanCreds), holding none of
// it. A PROCESS record that is not a JSON object is refused.
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
				var c Creds
				if c, err = rd.checkCreds(); err == nil {
					creds = append(creds, c)
				}
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

// checkCreds is check of a PROCESS record that also scans its payload
// for the credentials.
func (r *Reader) checkCreds() (Creds, error) {
	pr, pw := io.Pipe()
	type result struct {
		c   Creds
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := scanCreds(bufio.NewReaderSize(pr, 16<<10))
		io.Copy(io.Discard, pr) // what follows a bad object, or nothing
		res <- result{c, err}
	}()
	err := r.checkTo(pw)
	pw.Close()
	got := <-res
	if err != nil {
		return Creds{}, err
	}
	if got.err != nil {
		if got.err == io.ErrUnexpectedEOF {
			got.err = errors.New("unexpected end of JSON input")
		}
		return Creds{}, r.failAt(Corrupt, r.cur.Offset+recordHeaderSize, "bad JSON: "+got.err.Error())
	}
	return got.c, nil
}
