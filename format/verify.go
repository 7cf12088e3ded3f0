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
// PROCESS record, in order: the process's and its threads' own, as a
// restorer decoding it would see them (the same type and member
// matching: a record without "creds" says uid 0), so that whoever stores
// an image can tell whom it would run as. It reads them as the payload
// streams (see scanCreds), holding none of it; credentials met again are
// kept once (the returned values share memory: do not change them), and
// an image whose distinct credentials take more than MaxCredsBytes, or
// one of whose PROCESS records has more than MaxThreads threads or is
// not a JSON object, is refused.
func VerifyCreds(r io.Reader, lim Limits) (Info, Summary, []ProcessCreds, error) {
	rd, err := NewReaderLimits(r, lim)
	if err != nil {
		return Info{}, Summary{}, nil, err
	}
	var creds []ProcessCreds
	var tab credsTable
	for {
		h, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err == nil {
			if h.Type == TypeProcess {
				var c ProcessCreds
				if c, err = rd.checkCreds(&tab); err == nil {
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
// for the credentials, interning them in tab.
func (r *Reader) checkCreds(tab *credsTable) (ProcessCreds, error) {
	pr, pw := io.Pipe()
	type result struct {
		c   ProcessCreds
		err error
	}
	res := make(chan result, 1)
	go func() {
		c, err := scanCreds(bufio.NewReaderSize(pr, 16<<10), tab)
		io.Copy(io.Discard, pr) // what follows a bad object, or nothing
		res <- result{c, err}
	}()
	err := r.checkTo(pw)
	pw.Close()
	got := <-res
	if err != nil {
		return ProcessCreds{}, err
	}
	if ol, ok := got.err.(overLimit); ok {
		return ProcessCreds{}, r.failAt(Unsupported, r.cur.Offset+recordHeaderSize, string(ol))
	}
	if got.err != nil {
		if got.err == io.ErrUnexpectedEOF {
			got.err = errors.New("unexpected end of JSON input")
		}
		return ProcessCreds{}, r.failAt(Corrupt, r.cur.Offset+recordHeaderSize, "bad JSON: "+got.err.Error())
	}
	return got.c, nil
}
