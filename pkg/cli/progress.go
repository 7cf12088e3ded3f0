package cli

import (
	"fmt"
	"io"
	"time"
)

// progressInterval is the least time between two redraws of the progress
// line.
const progressInterval = 100 * time.Millisecond

// progressDelay is how long work goes on before a progress line shows:
// work done sooner than that draws nothing, not a flash of a line.
const progressDelay = 500 * time.Millisecond

// progressLine is the state of the single updating line on a terminal.
type progressLine struct {
	now   func() time.Time // nil means time.Now
	start time.Time
	last  time.Time
	shown bool
}

func (p *progressLine) clock() time.Time {
	if p.now != nil {
		return p.now()
	}
	return time.Now()
}

// ProgressFunc returns a function that draws a progress line, fit for the
// Progress fields of dump.Options and restore.Options, or nil when stderr
// is not a terminal (so that nothing is computed for nobody).
func (m *Msg) ProgressFunc() func(done, total int64) {
	if m.progress == nil {
		return nil
	}
	return m.Progress
}

// Progress draws "prog: 37% 120 MiB of 324 MiB, 1.2 GiB/s" over the
// previous progress line, at most every progressInterval, once
// progressDelay has passed since its first call. It does nothing when
// stderr is not a terminal.
func (m *Msg) Progress(done, total int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.progress
	if p == nil {
		return
	}
	now := p.clock()
	if p.start.IsZero() {
		p.start = now
	}
	if !p.shown && now.Sub(p.start) < progressDelay || p.shown && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	p.shown = true
	line := m.Prog + ": " + FormatBytes(done)
	if total > 0 {
		line = fmt.Sprintf("%s: %d%% %s of %s", m.Prog, done*100/total, FormatBytes(done), FormatBytes(total))
	}
	if el := now.Sub(p.start); el > 0 && done > 0 {
		line += fmt.Sprintf(", %s/s", FormatBytes(int64(float64(done)/el.Seconds())))
	}
	io.WriteString(m.w, "\r"+line+"\x1b[K")
}

// EndProgress clears the progress line, if one is shown.
func (m *Msg) EndProgress() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clearProgress()
}

// clearProgress erases the progress line. Precondition: m.mu is held.
func (m *Msg) clearProgress() {
	if p := m.progress; p != nil && p.shown {
		io.WriteString(m.w, "\r\x1b[K")
		p.shown = false
		p.last = time.Time{}
	}
}

// FormatBytes formats n bytes with a binary unit: "512 B", "1.5 KiB",
// "120 MiB", "4.0 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit || u == "TiB" {
			if v < 10 {
				return fmt.Sprintf("%.1f %s", v, u)
			}
			return fmt.Sprintf("%.0f %s", v, u)
		}
	}
	panic("unreachable")
}
