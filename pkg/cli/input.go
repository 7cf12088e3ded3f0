package cli

import (
	"errors"
	"io/fs"
	"os"
)

// ErrTerminalIn is the refusal to read an image from a terminal.
var ErrTerminalIn = errors.New("refusing to read an image from a terminal")

// OpenInput opens name for reading an image: "" or "-" means stdin, which
// must not be a terminal. The caller closes the file unless it is stdin.
func OpenInput(name string, stdin *os.File) (*os.File, error) {
	if name == "" || name == "-" {
		if IsTerminal(stdin) {
			return nil, WithHint(ErrTerminalIn, "give FILE or redirect stdin")
		}
		return stdin, nil
	}
	f, err := os.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: pe.Err}
		}
		return nil, err
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a directory")}
	}
	return f, nil
}
