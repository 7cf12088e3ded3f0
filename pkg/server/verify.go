package server

import (
	"io"

	"procs/format"
)

// VerifyImage is the Verifier of procs images: format.Verify, which checks
// the header, every record's checksums and the END record, and reads no
// byte past the end of an image that is not compressed as a whole. It
// returns the credentials of the PROCESS records too.
func VerifyImage(r io.Reader) (Meta, error) {
	info, _, creds, err := format.VerifyCreds(r)
	if err != nil {
		return Meta{}, err
	}
	return Meta{Comm: info.Comm, PID: info.PID, Host: info.Host, Creds: creds}, nil
}
