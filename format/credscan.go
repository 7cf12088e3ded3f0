package format

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// The credentials of a PROCESS record, read from its payload as it
// streams: a verifier (procs-serve) learns whom an image would run as
// without holding the record, which may decompress to its cap.
//
// A restorer gives credentials from two places of a record: the
// process's "creds" (its main thread's, and what it opens files as),
// and each thread's own "creds" in "threads", which a thread gets
// instead. The scanner walks the top-level JSON object and, inside the
// members that encoding/json would match to Process.Threads, each
// element's object, and decodes every value that encoding/json would
// decode into Process.Creds or Thread.Creds as it would: keys matched
// after unescaping under Unicode case folding, a repeated member merged
// into what came before, a second "threads" array decoding into the
// elements the first left (encoding/json reuses them), null clearing a
// thread's creds, and an empty array or null dropping the threads. The
// restorer and the verifier see the same credentials. It checks the
// nesting and the strings, not the whole grammar: a record it accepts
// that encoding/json refuses is refused by the restorer, which acts on
// nothing then.

// ProcessCreds are the credentials one PROCESS record gives.
type ProcessCreds struct {
	// Creds are the process's (Process.Creds): its main thread's
	// unless that has its own, every other thread's without its own,
	// and what a restorer opens the process's files as.
	Creds Creds
	// Threads are the distinct credentials of the threads that have
	// their own (Thread.Creds), in the order of the first thread that
	// has each.
	Threads []Creds
}

// All returns every credential the record gives: the process's first,
// then its threads'. Whoever checks whom an image runs as checks all.
func (p ProcessCreds) All() []Creds {
	return append([]Creds{p.Creds}, p.Threads...)
}

const (
	// maxCredsValue caps the bytes of one creds member's value.
	maxCredsValue = 64 << 10
	// MaxCredsBytes caps the distinct credentials a scan keeps for a
	// whole image, as the bytes of their JSON: images share a few
	// (every process of a tree usually has the same), and an image
	// that makes more is refused rather than let it fill the
	// verifier's memory.
	MaxCredsBytes = 1 << 20
	// maxKeyLen caps the bytes of a member key that is looked at; a
	// longer key (neither "creds" nor "threads", whatever its escapes)
	// is skipped.
	maxKeyLen = 64
)

var errNotObject = errors.New("not a JSON object")

// overLimit is what a scan says of a record past one of its limits
// (MaxCredsBytes, MaxThreads), which is not bad JSON.
type overLimit string

func (e overLimit) Error() string { return string(e) }

// credsTable holds the distinct credentials a scan met, each once, so
// that a tree of thousands of processes and threads that share them
// costs one copy; their size is capped by MaxCredsBytes. What it holds is
// never changed (merge decodes into a copy).
type credsTable struct {
	byKey map[string]*Creds
	bytes int
}

// intern returns the table's copy of c, adding it.
func (t *credsTable) intern(c Creds) (*Creds, error) {
	k, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if p, ok := t.byKey[string(k)]; ok {
		return p, nil
	}
	if t.bytes += len(k); t.bytes > MaxCredsBytes {
		return nil, overLimit(fmt.Sprintf("credentials of more than %d bytes (distinct ones, as JSON)", MaxCredsBytes))
	}
	if t.byKey == nil {
		t.byKey = map[string]*Creds{}
	}
	t.byKey[string(k)] = &c
	return &c, nil
}

// merge returns what decoding the JSON value v into old (nil: zero
// credentials) gives, as encoding/json does it in place, interned.
func (t *credsTable) merge(old *Creds, v []byte) (*Creds, error) {
	var c Creds
	if old != nil {
		c = *old
		c.Groups = slices.Clone(old.Groups) // nil stays nil, empty stays empty
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return nil, fmt.Errorf("creds: %v", err)
	}
	return t.intern(c)
}

// credsScan is what a scan of one record knows so far.
type credsScan struct {
	tab  *credsTable
	proc *Creds // the process's; nil: none yet (zero)
	// threads are the elements of the Threads slice encoding/json
	// would have made so far, its length n: all it ever decoded since
	// the slice was last dropped, a later shorter array leaving the
	// rest for a longer one to decode into again. Each is the
	// thread's own creds, or nil.
	threads []*Creds
	n       int
}

// scanCreds reads one JSON object, a PROCESS record, from r to its end
// and returns the credentials it gives, interned in tab.
func scanCreds(r *bufio.Reader, tab *credsTable) (ProcessCreds, error) {
	s := &credsScan{tab: tab}
	err := object(r, func(key []byte) error {
		switch {
		case isKey(key, "creds"):
			v, err := credsValue(r)
			if err == nil {
				s.proc, err = tab.merge(s.proc, v)
			}
			return err
		case isKey(key, "threads"):
			return s.scanThreads(r)
		}
		return skipValue(r, nil, 0)
	})
	if err != nil {
		return ProcessCreds{}, err
	}
	if c, err := skipSpace(r); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("%q after the object", c)
		}
		return ProcessCreds{}, err
	}
	var pc ProcessCreds
	if s.proc != nil {
		pc.Creds = *s.proc
	}
	seen := map[*Creds]bool{} // interned: the same credentials, the same pointer
	for _, c := range s.threads[:s.n] {
		if c != nil && !seen[c] {
			seen[c] = true
			pc.Threads = append(pc.Threads, *c)
		}
	}
	return pc, nil
}

// credsValue reads the value of a creds member, at most maxCredsValue
// bytes.
func credsValue(r *bufio.Reader) ([]byte, error) {
	var v []byte
	if err := skipValue(r, &v, maxCredsValue); err == errTooLong {
		return nil, fmt.Errorf("creds longer than %d bytes", maxCredsValue)
	} else if err != nil {
		return nil, err
	}
	return v, nil
}

// scanThreads reads the value of a threads member into s.threads, as
// encoding/json decodes it into the Threads slice: null, or an empty
// array, makes a new, empty slice; a non-empty array decodes its
// elements into the slice's elements (which keep what an earlier array
// gave them) and sets its length.
func (s *credsScan) scanThreads(r *bufio.Reader) error {
	c, err := peek(r)
	if err != nil {
		return err
	}
	if c != '[' {
		if err := null(r, "threads: not an array"); err != nil {
			return err
		}
		s.threads, s.n = nil, 0
		return nil
	}
	r.ReadByte()
	if c, err = peek(r); err != nil {
		return err
	}
	if c == ']' {
		r.ReadByte()
		s.threads, s.n = nil, 0
		return nil
	}
	for i := 0; ; i++ {
		if i >= MaxThreads {
			return overLimit(fmt.Sprintf("a process of more than %d threads", MaxThreads))
		}
		if i == len(s.threads) {
			s.threads = append(s.threads, nil)
		}
		if err := s.scanThread(r, i); err != nil {
			return err
		}
		c, err := peek(r)
		if err != nil {
			return err
		}
		r.ReadByte()
		switch c {
		case ']':
			s.n = i + 1
			return nil
		case ',':
		default:
			return fmt.Errorf("want , or ] at %q", c)
		}
	}
}

// scanThread reads element i of a threads array: an object, whose creds
// members decode into the thread's (null clearing them), or null, which
// changes nothing.
func (s *credsScan) scanThread(r *bufio.Reader, i int) error {
	c, err := peek(r)
	if err != nil {
		return err
	}
	if c != '{' {
		return null(r, "threads: an element is not an object")
	}
	return object(r, func(key []byte) error {
		if !isKey(key, "creds") {
			return skipValue(r, nil, 0)
		}
		v, err := credsValue(r)
		switch {
		case err != nil:
			return err
		case string(v) == "null":
			s.threads[i] = nil
		case v[0] != '{':
			return errors.New("creds of a thread: not an object")
		default:
			s.threads[i], err = s.tab.merge(s.threads[i], v)
		}
		return err
	})
}

// null reads a value that must be null, failing with message else (a
// value encoding/json refuses there).
func null(r *bufio.Reader, message string) error {
	var v []byte
	if err := skipValue(r, &v, 8); err != nil && err != errTooLong {
		return err
	}
	if string(v) != "null" {
		return errors.New(message)
	}
	return nil
}

// object reads a JSON object whose opening brace is next (past white
// space), calling member with each member's raw key (nil when longer
// than maxKeyLen) to read its value.
func object(r *bufio.Reader, member func(key []byte) error) error {
	if err := expect(r, '{'); err != nil {
		return err
	}
	for first := true; ; first = false {
		c, err := peek(r)
		if err != nil {
			return err
		}
		if c == '}' {
			r.ReadByte()
			return nil
		}
		if !first {
			if c != ',' {
				return fmt.Errorf("want , or } at %q", c)
			}
			r.ReadByte()
			if c, err = peek(r); err != nil {
				return err
			}
		}
		if c != '"' {
			return fmt.Errorf("want a member name at %q", c)
		}
		var key []byte
		if err := skipString(r, &key, maxKeyLen); err == errTooLong {
			key = nil
		} else if err != nil {
			return err
		}
		if err := expect(r, ':'); err != nil {
			return err
		}
		if err := member(key); err != nil {
			return err
		}
	}
}

// isKey says whether encoding/json matches the raw (quoted, escaped) key
// to the field whose name is name.
func isKey(raw []byte, name string) bool {
	var k string
	if raw == nil || json.Unmarshal(raw, &k) != nil {
		return false
	}
	return strings.EqualFold(k, name)
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

// peek is skipSpace inside a value: the input ending there is a cut
// value.
func peek(r *bufio.Reader) (byte, error) {
	c, err := skipSpace(r)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

// expect reads the next byte past white space, which must be want.
func expect(r *bufio.Reader, want byte) error {
	c, err := peek(r)
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
	c, err := peek(r)
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
