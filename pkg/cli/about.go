package cli

import (
	"io"

	"github.com/pborman/getopt/v2"
)

// About answers -h and --version: it writes text (the usage, or
// "prog version") to stdout and returns the exit status, failCode when
// stdout fails.
func About(stdout io.Writer, msg *Msg, text string, failCode int) int {
	if _, err := io.WriteString(stdout, text); err != nil {
		msg.Errorf("write to stdout: %v", err)
		return failCode
	}
	return ExitOK
}

// Flags are the options every command has.
type Flags struct {
	Help, Version, Verbose bool
}

// Register adds -h/--help, --version and -v/--verbose to set.
func (f *Flags) Register(set *getopt.Set) {
	set.FlagLong(&f.Verbose, "verbose", 'v')
	set.FlagLong(&f.Help, "help", 'h')
	set.FlagLong(&f.Version, "version", 0)
}

// Preamble does what a command's Main does once its options are parsed
// (and SIGPIPE made harmless, see IgnoreSIGPIPE): it reports a parse
// error (with a hint to --help) and answers -h and --version, returning
// the exit status and done = true; otherwise it turns -v on and returns
// done = false. usageCode is the status of a usage error; a command
// whose usage errors exit with its failure status (procs-load's 125)
// also fails with it when stdout does.
func Preamble(msg *Msg, stdout io.Writer, usage string, f Flags, err error, usageCode int) (code int, done bool) {
	switch {
	case err != nil:
		msg.Error(err)
		msg.Hintf("%s", UsageHint(msg.Prog))
		return usageCode, true
	}
	failCode := ExitFailure
	if usageCode == ExitLoadFailure {
		failCode = ExitLoadFailure
	}
	switch {
	case f.Help:
		return About(stdout, msg, usage, failCode), true
	case f.Version:
		return About(stdout, msg, msg.Prog+" "+Version+"\n", failCode), true
	}
	msg.SetVerbose(f.Verbose)
	return ExitOK, false
}
