package procscmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"procs/pkg/api"
	"procs/pkg/cli"
	"procs/pkg/show"
)

// show prints what an image holds without restoring it: a file when one
// exists by that name (or "-", stdin), else that image of the local
// server. A damaged image is shown up to the damage, then the reader's
// error, and show exits 1.
func (c *cmd) show() int {
	arg := c.o.operands[0]
	var in io.Reader
	if _, err := os.Stat(arg); err == nil || arg == "-" || !api.ValidID(arg) {
		f, err := cli.OpenInput(arg, c.stdin)
		if err != nil {
			return c.fail(cli.ExitFailure, err)
		}
		if f != c.stdin {
			defer f.Close()
		}
		in = f
	} else {
		cl, err := c.local()
		if err != nil {
			return c.failClient(err)
		}
		// Showing runs nothing: an image its uploader could not have
		// made run as it is exactly one to look into.
		cl.TrustUploaded = true
		body, err := cl.Fetch(c.ctx, arg)
		if err != nil {
			return c.fail(cli.ExitFailure, err)
		}
		defer body.Close()
		c.msg.Logf("reading %s from %s", arg, cl.Server())
		in = body
	}
	img, readErr := show.Read(in)
	var err error
	if c.o.json {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(img)
	} else {
		err = show.WriteText(c.stdout, img)
	}
	if readErr != nil {
		return c.fail(cli.ExitFailure, readErr)
	}
	if err != nil {
		if errors.Is(err, syscall.EPIPE) {
			return cli.ExitFailure // the reader went away, as with head(1)
		}
		return c.fail(cli.ExitFailure, fmt.Errorf("write to stdout: %v", err))
	}
	return cli.ExitOK
}
