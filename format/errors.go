package format

import "fmt"

// ErrorKind classifies a FormatError.
type ErrorKind int

const (
	Corrupt     ErrorKind = iota // the image is damaged or malformed
	Truncated                    // the input ends before the END record does
	Unsupported                  // a version, type or flag this reader does not know
	NotImage                     // the input does not start with the magic
	Empty                        // the input is empty
)

// FormatError describes what is wrong with an image and where.
type FormatError struct {
	Kind   ErrorKind
	Offset int64      // byte offset in the (decompressed) image
	Record int        // index of the record, INFO being 0; -1 for the file header
	Type   RecordType // type of the record, when Record >= 0 and the type is known
	Msg    string
}

func (e *FormatError) Error() string {
	switch e.Kind {
	case Empty:
		return "empty input"
	case NotImage:
		if e.Msg != "" {
			return "not a procs image (" + e.Msg + ")"
		}
		return "not a procs image (bad magic)"
	}
	what := "corrupt image"
	switch e.Kind {
	case Truncated:
		what = "truncated image"
	case Unsupported:
		what = "unsupported image"
	}
	where := "file header"
	if e.Record >= 0 {
		if e.Type != 0 {
			where = fmt.Sprintf("record %d, %v", e.Record, e.Type)
		} else {
			where = fmt.Sprintf("record %d", e.Record)
		}
	}
	return fmt.Sprintf("%s at byte %d (%s): %s", what, e.Offset, where, e.Msg)
}
