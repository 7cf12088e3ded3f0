package server

import (
	"io"

	"procs/format"
)

// VerifyImage is the Verifier of procs images: format.Verify, which checks
// the header, every record's checksums and the END record, and reads no
// byte past the end of an image that is not compressed as a whole. It
// returns the credentials of the PROCESS records too, their threads'
// included. It holds no payload
// but INFO's and PROCESS's (see format.VerifyCreds), and at most one
// window of format.MaxRecordWindow: an image compressed as a whole may
// not ask for more either (xz -6, zstd -19 and below fit).
func VerifyImage(r io.Reader) (Meta, error) {
	info, _, creds, err := format.VerifyCreds(r, format.Limits{StreamWindow: format.MaxRecordWindow})
	if err != nil {
		return Meta{}, err
	}
	return Meta{Comm: info.Comm, PID: info.PID, Host: info.Host, Creds: creds}, nil
}
