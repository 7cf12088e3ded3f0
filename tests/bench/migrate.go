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
	r := route{addr: ln.Addr().String()}
	ln.Close()
	stop, err := r.serve(dir)
	if err != nil {
		return err
	}
	defer stop()

	// The victim keeps writing its memory at random, as a service does:
	// what a live migration (procs send --live) must keep up with.
	v, err := startVictim(hog, strconv.Itoa(mib), "0", strconv.Itoa(migrateWrites))
	if err != nil {
		return err
	}
	defer v.stop()
	size := int64(v.len)
	label := human(size)
	null, err := timeDump(v.cmd.Process.Pid, sinks(dir)[0], false)
	if err != nil {
		return fmt.Errorf("procs-dump to /dev/null: %v", err)
	}
	plain, err := migrateOnce(r, dir, v.cmd.Process.Pid, nil, nil, nil)
	if err != nil {
		return err
	}
	line(tw, label, "procs receive: restored in", dur(plain.restore))
	row(tw, label, "procs send (until stored)", plain.sent, null.d, 0, size)
	row(tw, label, "send to receive, running", plain.running, null.d, 0, size)
	line(tw, label, "stopped: dump frozen", dur(plain.frozen))
	line(tw, label, "stopped in migration", dur(plain.stopped))

	lv, err := startVictim(hog, strconv.Itoa(mib), "0", strconv.Itoa(migrateWrites))
	if err != nil {
		return err
	}
	defer lv.stop()
	live, err := migrateOnce(r, dir, lv.cmd.Process.Pid, nil, []string{"--live"}, nil)
	if err != nil {
		return fmt.Errorf("--live: %v", err)
	}
	row(tw, label, "procs send --live (until stored)", live.sent, null.d, 0, size)
	row(tw, label, "send --live to receive, running", live.running, null.d, 0, size)
	line(tw, label, "stopped with --live: dump frozen", dur(live.frozen))
	line(tw, label, "stopped in --live migration", dur(live.stopped))
	line(tw, label, "--live image / resident", fmt.Sprintf("%.2fx", float64(live.image)/float64(size)))
	line(tw, label, "--live total / plain total", fmt.Sprintf("%.2fx", float64(live.running)/float64(plain.running)))

	// Post-copy: procs receive --lazy runs the process once its
	// description is in, and asks for the pages it touches by range.
	for _, sendLive := range []bool{false, true} {
		lz, err := startVictim(hog, strconv.Itoa(mib), "0", strconv.Itoa(migrateWrites))
		if err != nil {
			return err
		}
		defer lz.stop()
		quiet := quietGap(lz, quietWindow)
		var sendArgs []string
		if sendLive {
			sendArgs = []string{"--live"}
		}
		m, err := migrateOnce(r, dir, lz.cmd.Process.Pid, nil, sendArgs, []string{"--lazy"})
		if err != nil {
			return fmt.Errorf("--lazy: %v", err)
		}
		what := "send, receive --lazy"
		if sendLive {
			what = "send --live, receive --lazy"
		}
		row(tw, label, what+": running", m.running, null.d, 0, size)
		line(tw, label, what+": restored in", dur(m.restore))
		line(tw, label, what+": stopped", dur(m.stopped))
		line(tw, label, what+": longest gap after, while pages came", dur(m.streamGap))
		line(tw, label, what+": longest gap before, not moving", dur(quiet))
		line(tw, label, what+": total / plain total", fmt.Sprintf("%.2fx", float64(m.pagesIn)/float64(plain.running)))
	}
	return nil
}

// migrateWrites is how many MiB a second the migrated victim writes.
const migrateWrites = 10

// quietWindow is how long a victim's ticker is watched, the victim left
// alone, before it moves (quietGap): about as long as the pages of a
// lazy migration take to come.
const quietWindow = 3 * time.Second

// quietGap is the longest gap of v's ticker over d, v left alone: what
// the machine gives any process now, beside which the gaps of a
// migration are read.
func quietGap(v *victim, d time.Duration) time.Duration {
	var g time.Duration
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-v.out:
			if !ok {
				return g
			}
			if gap, _, ok := gapOf(l.text); ok {
				g = max(g, gap)
			}
		case <-deadline:
			return g
		}
	}
}

// route is where a migration goes: procs-serve at addr, and where
// procs-serve, procs receive and procs send run (argv prefixes: nil for
// here), with env added to theirs.
type route struct {
	addr               string
	server, recv, send []string
	env                []string
}

// command is bin of binDir with args, run with prefix.
func (r route) command(prefix []string, bin string, args ...string) *exec.Cmd {
	argv := append(append(append([]string(nil), prefix...), filepath.Join(*binDir, bin)), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), r.env...)
	return cmd
}

// serve starts procs-serve [args...] with its state in dir, and returns
// once procs list from the sending side answers, with what stops it.
func (r route) serve(dir string, args ...string) (stop func(), err error) {
	state := filepath.Join(dir, "serve")
	srv := r.command(r.server, "procs-serve", append([]string{"-l", r.addr, "-d", state}, args...)...)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, err
	}
	stop = func() { srv.Process.Kill(); srv.Wait(); os.RemoveAll(state) }
	for i := 0; r.command(r.send, "procs", "list", "-s", r.addr).Run() != nil; i++ {
		if i == 100 {
			stop()
			return nil, fmt.Errorf("procs-serve does not answer on %s", r.addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop, nil
}

// migration is what migrateOnce measured.
type migration struct {
	sent, running time.Duration // procs send until stored; until the restored process ran
	frozen        time.Duration // the dump's frozen time (procs send -v)
	stopped       time.Duration // the restored process's own ticker: the longest gap
	image         int64         // bytes stored
	ranAt         time.Time     // when the restored process ran
	pagesIn       time.Duration // until procs receive -d exited: with --lazy, every page in
	streamGap     time.Duration // the ticker's longest gap after that of the migration, until then
	restore       time.Duration // procs receive -v: from the image's start to the process running
}

// migrateOnce moves process pid by route r: procs receive -d -v
// [recvArgs...] waits on the server, procs send [sendArgs...] dumps the
// victim into an upload, and the restored process reports how long it
// was stopped. running, if not nil, is called once it runs, before it is
// killed.
func migrateOnce(r route, dir string, pid int, running func() error, sendArgs, recvArgs []string) (migration, error) {
	var m migration
	// The receiver waits first; its stdout is where the restored
	// process reports.
	rp, w, err := os.Pipe()
	if err != nil {
		return m, err
	}
	out := make(chan said, 1024)
	errf, err := os.CreateTemp(dir, "stderr")
	if err != nil {
		return m, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	recv := r.command(r.recv, "procs", append([]string{"receive", "-d", "-v", "-s", r.addr}, recvArgs...)...)
	recv.Stdout, recv.Stderr = w, errf
	if err := recv.Start(); err != nil {
		return m, err
	}
	w.Close()
	go readLines(rp, out)
	time.Sleep(200 * time.Millisecond) // let it ask the server

	var stderr bytes.Buffer
	send := r.command(r.send, "procs", append([]string{"send", strconv.Itoa(pid), "-s", r.addr, "-v"}, sendArgs...)...)
	send.Stderr = &stderr
	t0 := time.Now()
	if err := send.Run(); err != nil {
		recv.Process.Kill()
		recv.Wait()
		return m, fmt.Errorf("procs send: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	m.sent = time.Since(t0)
	m.frozen, m.image = sendFigures(stderr.String())
	restored, at, stopped := awaitRestored(out, 1, 5*time.Minute)
	m.stopped = stopped
	if !at.IsZero() {
		m.running, m.ranAt = at.Sub(t0), at
	}
	recv.Wait()
	m.pagesIn = time.Since(t0)
	time.Sleep(50 * time.Millisecond) // the ticker's last lines
	for drained := false; !drained; {
		select {
		case l := <-out:
			if g, _, ok := gapOf(l.text); ok {
				m.streamGap = max(m.streamGap, g)
			}
		default:
			drained = true
		}
	}
	if b, err := os.ReadFile(errf.Name()); err == nil {
		m.restore = restoredIn(string(b))
		if restored == 0 {
			for _, l := range strings.Split(string(b), "\n") {
				fmt.Sscanf(l, "procs: process %d runs", &restored)
			}
		}
	}
	if m.running == 0 {
		if restored > 0 {
			killTree([]int{restored})
		}
		b, _ := os.ReadFile(errf.Name())
		return m, errors.New("the migrated process did not report: " + strings.TrimSpace(string(b)))
	}
	if running != nil {
		err = running()
	}
	if restored > 0 {
		killTree([]int{restored})
	}
	return m, err
}

// restoredIn reads "restored pid N in D" of procs receive -v.
func restoredIn(log string) time.Duration {
	for _, l := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(l, ": restored pid "); ok {
			if _, d, ok := strings.Cut(rest, " in "); ok {
				v, _ := time.ParseDuration(strings.TrimSpace(d))
				return v
			}
		}
	}
	return 0
}

// sendFigures reads the frozen time and the image size from the last
// line of procs send -v ("stored as ID on SERVER: SIZE, frozen D, ...").
func sendFigures(log string) (frozen time.Duration, image int64) {
	for _, l := range strings.Split(log, "\n") {
		_, rest, ok := strings.Cut(l, ": stored as ")
		if !ok {
			continue
		}
		if _, f, ok := strings.Cut(rest, ", frozen "); ok {
			frozen, _ = time.ParseDuration(strings.TrimSpace(strings.Split(f, ",")[0]))
		}
		if _, sz, ok := strings.Cut(rest, ": "); ok {
			image = parseHuman(strings.Split(sz, ",")[0])
		}
	}
	return frozen, image
}

// parseHuman reads a size as cli.FormatBytes writes it ("1.0 GiB").
func parseHuman(s string) int64 {
	var n float64
	var unit string
	fmt.Sscanf(strings.TrimSpace(s), "%g %s", &n, &unit)
	mult := map[string]float64{"B": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}[unit]
	return int64(n * mult)
}
