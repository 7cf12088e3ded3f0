package format

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// The credentials of a PROCESS record, read from its payload as it
// streams: a verifier (procs-serve) learns whom an image would run as
// without holding the record, which may decompress to its cap.
//
// The scanner walks the top-level JSON object and keeps the value of
// each member whose key encoding/json would match to Process.Creds (its
// unescaped key equal to "creds" under Unicode case folding), then
// decodes those values in order into one Creds, as json.Unmarshal of the
// whole record into a Process does: the restorer and the verifier see
// the same credentials. It checks the nesting and the strings, not the
// whole grammar: a record it accepts that encoding/json refuses is
// refused by the restorer, which acts on nothing then.

// maxCredsValue caps the bytes of one creds member's value.
const maxCredsValue = 64 << 10

// maxKeyLen caps the bytes of a member key that is looked at; a longer
// key (not "creds", whatever its escapes) is skipped.
const maxKeyLen = 64

var errNotObject = errors.New("not a JSON object")

// scanCreds reads one JSON object from r to its end and returns the
// credentials its creds members give.
func scanCreds(r *bufio.Reader) (Creds, error) {
	var vals [][]byte
	if err := expect(r, '{'); err != nil {
		return Creds{}, err
	}
	for first := true; ; first = false {
		c, err := skipSpace(r)
		if err != nil {
			return Creds{}, err
		}
		if c == '}' {
			r.ReadByte()
			break
		}
		if !first {
			if c != ',' {
				return Creds{}, fmt.Errorf("want , or } at %q", c)
			}
			r.ReadByte()
			if c, err = skipSpace(r); err != nil {
				return Creds{}, err
			}
		}
		if c != '"' {
			return Creds{}, fmt.Errorf("want a member name at %q", c)
		}
		var key []byte
		if err := skipString(r, &key, maxKeyLen); err != nil && err != errTooLong {
			return Creds{}, err
		} else if err == errTooLong {
			key = nil
		}
		if err := expect(r, ':'); err != nil {
			return Creds{}, err
		}
		if isCredsKey(key) {
			var v []byte
			if err := skipValue(r, &v, maxCredsValue); err == errTooLong {
				return Creds{}, fmt.Errorf("creds longer than %d bytes", maxCredsValue)
			} else if err != nil {
				return Creds{}, err
			}
			vals = append(vals, v)
		} else if err := skipValue(r, nil, 0); err != nil {
			return Creds{}, err
		}
	}
	if c, err := skipSpace(r); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%q after the object", c)
		}
		return Creds{}, err
	}
	var c Creds
	for _, v := range vals {
		if err := json.Unmarshal(v, &c); err != nil {
			return Creds{}, fmt.Errorf("creds: %v", err)
		}
	}
	return c, nil
}

// isCredsKey says whether encoding/json matches the raw (quoted,
// escaped) key to the field Creds of Process.
func isCredsKey(raw []byte) bool {
	var k string
	if raw == nil || json.Unmarshal(raw, &k) != nil {
		return false
	}
	return strings.EqualFold(k, "creds")
}

var errTooLong = errors.New("too long")

// next reads a byte inside a value: the input ending there is a cut
// value.
func next(r *bufio.Reader) (byte, error) {
	c, err := r.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

// skipSpace returns the next byte that is not JSON white space, unread.
func skipSpace(r *bufio.Reader) (byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		r.UnreadByte()
		return c, nil
	}
}

// expect reads the next byte past white space, which must be want.
func expect(r *bufio.Reader, want byte) error {
	c, err := skipSpace(r)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if c != want {
		if want == '{' {
			return errNotObject
		}
		return fmt.Errorf("want %q at %q", want, c)
	}
	r.ReadByte()
	return nil
}

// keep appends c to *buf when buf is not nil, failing once it holds max
// bytes.
func keep(buf *[]byte, max int, c byte) error {
	if buf == nil {
		return nil
	}
	if len(*buf) >= max {
		return errTooLong
	}
	*buf = append(*buf, c)
	return nil
}

// skipString reads a string whose opening quote is next, keeping it
// (quotes included) in buf when not nil.
func skipString(r *bufio.Reader, buf *[]byte, max int) error {
	var tooLong error
	put := func(c byte) {
		if tooLong == nil {
			tooLong = keep(buf, max, c)
		}
	}
	c, _ := r.ReadByte() // the opening quote
	put(c)
	for esc := false; ; {
		c, err := next(r)
		if err != nil {
			return err
		}
		put(c)
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			return tooLong
		case c < 0x20:
			return fmt.Errorf("control character %#x in a string", c)
		}
	}
}

// skipValue reads one JSON value, keeping it in buf when not nil.
func skipValue(r *bufio.Reader, buf *[]byte, max int) error {
	c, err := skipSpace(r)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	switch c {
	case '"':
		return skipString(r, buf, max)
	case '{', '[':
		var stack []byte
		for {
			c, err := next(r)
			if err != nil {
				return err
			}
			switch c {
			case '"':
				r.UnreadByte()
				if err := skipString(r, buf, max); err != nil {
					return err
				}
				continue
			case '{', '[':
				if len(stack) >= 10000 {
					return errors.New("nested too deep")
				}
				stack = append(stack, c)
			case '}', ']':
				open := byte('{')
				if c == ']' {
					open = '['
				}
				if len(stack) == 0 || stack[len(stack)-1] != open {
					return fmt.Errorf("unbalanced %q", c)
				}
				stack = stack[:len(stack)-1]
			}
			if err := keep(buf, max, c); err != nil {
				return err
			}
			if len(stack) == 0 {
				return nil
			}
		}
	default:
		// A number or a literal: up to the next delimiter.
		n := 0
		for {
			c, err := r.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				return err
			}
			if strings.IndexByte(",}] \t\r\n", c) >= 0 {
				r.UnreadByte()
				break
			}
			if strings.IndexByte("0123456789+-.eEtruefalsn", c) < 0 {
				return fmt.Errorf("unexpected %q", c)
			}
			if err := keep(buf, max, c); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("unexpected %q", c)
		}
		return nil
	}
}
