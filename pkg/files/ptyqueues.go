package files

// The queues of a pseudo-terminal are taken and put back (takeQueues) by
// a process of their own, procs-dump itself run again as queuesName: were
// procs-dump killed meanwhile, the helper would still put the bytes back
// and give the slave its modes back, and the tree would go on as before.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"

	"golang.org/x/sys/unix"
)

// queuesName is argv[0] of the helper; its fds 3 and 4 are the master and
// the slave, its argument "packet" or "plain".
const queuesName = "procs-pty-queues"

func init() {
	if len(os.Args) == 2 && os.Args[0] == queuesName {
		os.Exit(runQueues(os.Args[1] == "packet"))
	}
}

// runQueues is the helper's life: it takes and puts back the queues, then
// writes to fd 1 the slave's input and the master's, each a little-endian
// uint32 length and the bytes, then the error, if any, as text.
func runQueues(packet bool) int {
	// Its reader, procs-dump, may be gone: the write fails, nothing else.
	signal.Ignore(unix.SIGPIPE)
	in, out, err := takeQueues(3, 4, packet)
	var b bytes.Buffer
	for _, q := range [][]byte{in, out} {
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(q))))
		b.Write(q)
	}
	if err != nil {
		b.WriteString(err.Error())
	}
	if _, err := os.Stdout.Write(b.Bytes()); err != nil {
		return 1
	}
	return 0
}

// takeQueuesApart is takeQueues run by the helper, on m and s, files of
// procs-dump's.
func takeQueuesApart(m, s *os.File, packet bool) (in, out []byte, err error) {
	mode := "plain"
	if packet {
		mode = "packet"
	}
	var stdout bytes.Buffer
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{queuesName, mode},
		ExtraFiles: []*os.File{m, s}, Stdout: &stdout}
	if err := cmd.Run(); err != nil {
		return nil, nil, fmt.Errorf("its helper: %w", err)
	}
	r := bytes.NewReader(stdout.Bytes())
	var qs [2][]byte
	for k := range qs {
		var n uint32
		if err := binary.Read(r, binary.LittleEndian, &n); err != nil || int(n) > r.Len() {
			return nil, nil, errors.New("its helper said too little")
		}
		qs[k] = make([]byte, n)
		io.ReadFull(r, qs[k])
	}
	if r.Len() > 0 {
		rest, _ := io.ReadAll(r)
		return nil, nil, errors.New(string(rest))
	}
	return qs[0], qs[1], nil
}
