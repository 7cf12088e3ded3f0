package cli

import (
	"errors"
	"fmt"
	"sort"

	"github.com/pborman/getopt/v2"
)

// UsageError is a bad command line. Commands exit with their usage code
// on it, and print a hint pointing at -h.
type UsageError struct {
	Err error
}

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// IsUsage reports whether err is a *UsageError.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// UsageHint is the hint printed after a usage error of prog.
func UsageHint(prog string) string {
	return "run '" + prog + " --help' for usage"
}

// Parse parses args (args[0] is the program name) with set, GNU style:
// options and operands may come in any order, and "--" ends the options.
// It returns the operands. A lone "-" is an operand. Errors are
// *UsageError with messages like "unknown option: -x".
func Parse(set *getopt.Set, args []string) ([]string, error) {
	if len(args) == 0 {
		args = []string{""}
	}
	var operands []string
	rest := args
	for {
		if err := set.Getopt(rest, nil); err != nil {
			return nil, &UsageError{Err: optionError(err)}
		}
		a := set.Args()
		switch set.State() {
		case getopt.DashDash:
			return append(operands, a...), nil
		case getopt.EndOfOptions, getopt.Dash:
			if len(a) == 0 {
				return operands, nil
			}
			operands = append(operands, a[0])
			rest = append([]string{args[0]}, a[1:]...)
		default:
			return append(operands, a...), nil
		}
	}
}

// optionError rewrites getopt's errors into procs' style.
func optionError(err error) error {
	var ge *getopt.Error
	if !errors.As(err, &ge) {
		return err
	}
	switch ge.ErrorCode {
	case getopt.UnknownOption:
		return fmt.Errorf("unknown option %s", ge.Name)
	case getopt.MissingParameter:
		return fmt.Errorf("option %s needs a value", ge.Name)
	case getopt.ExtraParameter:
		return fmt.Errorf("option %s takes no value", ge.Name)
	case getopt.Invalid:
		return fmt.Errorf("invalid value %q for %s", ge.Parameter, ge.Name)
	}
	return err
}

// LongOptions returns the long options ("--output") named in a usage
// text, sorted, each once: "--", a lower-case letter, then letters,
// digits and dashes. Tests use it to check that a man page documents
// every option. (Not a regexp: its package's init and the Unicode tables
// it keeps cost every command ~0.1 ms at start.)
func LongOptions(usage string) []string {
	seen := map[string]bool{}
	var out []string
	for i := 0; i+2 < len(usage); i++ {
		if usage[i] != '-' || usage[i+1] != '-' || !isLower(usage[i+2]) {
			continue
		}
		j := i + 3
		for j < len(usage) && (isLower(usage[j]) || usage[j] >= '0' && usage[j] <= '9' || usage[j] == '-') {
			j++
		}
		if o := usage[i:j]; !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
		i = j - 1
	}
	sort.Strings(out)
	return out
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
