package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// benchMigrate moves a victim of mib MiB through procs-serve on loopback:
// procs receive -d waits on the server, procs send dumps the victim into
// an upload, and the restored process reports how long it was stopped.
// Dump to /dev/null of the same victim is measured beside it.
func benchMigrate(tw io.Writer, hog, dir string, mib int) error {
	for _, b := range []string{"procs", "procs-serve"} {
		if _, err := os.Stat(filepath.Join(*binDir, b)); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	ln.Close()
	state := filepath.Join(dir, "serve")
	srv := exec.Command(filepath.Join(*binDir, "procs-serve"), "-l", addr, "-d", state)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { srv.Process.Kill(); srv.Wait(); os.RemoveAll(state) }()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			return fmt.Errorf("procs-serve does not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	v, err := startVictim(hog, strconv.Itoa(mib))
	if err != nil {
		return err
	}
	defer v.stop()
	size := int64(v.len)
	label := human(size)
	pid := v.cmd.Process.Pid
	null, err := timeDump(pid, sinks(dir)[0], false)
	if err != nil {
		return fmt.Errorf("procs-dump to /dev/null: %v", err)
	}

	// The receiver waits first; its stdout is where the restored
	// process reports.
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	out := make(chan said, 1024)
	errf, err := os.CreateTemp(dir, "stderr")
	if err != nil {
		return err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	recv := exec.Command(filepath.Join(*binDir, "procs"), "receive", "-d", "-s", addr)
	recv.Stdout, recv.Stderr = w, errf
	if err := recv.Start(); err != nil {
		return err
	}
	w.Close()
	go readLines(r, out)
	time.Sleep(200 * time.Millisecond) // let it ask the server

	var stderr bytes.Buffer
	send := exec.Command(filepath.Join(*binDir, "procs"), "send", strconv.Itoa(pid), "-s", addr)
	send.Stderr = &stderr
	t0 := time.Now()
	if err := send.Run(); err != nil {
		recv.Process.Kill()
		recv.Wait()
		return fmt.Errorf("procs send: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	sent := time.Since(t0)
	restored, at, stopped := awaitRestored(out, 1, 5*time.Minute)
	var running time.Duration
	if !at.IsZero() {
		running = at.Sub(t0)
	}
	recv.Wait()
	if restored == 0 {
		b, _ := os.ReadFile(errf.Name())
		fmt.Sscanf(strings.TrimSpace(string(b)), "%d", &restored)
	}
	if restored > 0 {
		killTree([]int{restored})
	}
	if running == 0 {
		b, _ := os.ReadFile(errf.Name())
		return errors.New("the migrated process did not report: " + strings.TrimSpace(string(b)))
	}
	row(tw, label, "procs send (until stored)", sent, null.d, 0, size)
	row(tw, label, "send to receive, running", running, null.d, 0, size)
	line(tw, label, "stopped in migration", dur(stopped))
	return nil
}
