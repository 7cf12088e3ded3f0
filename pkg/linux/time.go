package linux

// Itimer is the layout shared by struct itimerval (setitimer: timevals,
// the rest in microseconds) and struct itimerspec (timer_settime:
// timespecs, the rest in nanoseconds): the interval, then the value, each
// as seconds and the rest.
type Itimer struct {
	IntervalSec  int64
	IntervalRest int64
	ValueSec     int64
	ValueRest    int64
}

// SizeofItimer is sizeof(struct itimerval) and sizeof(struct itimerspec).
const SizeofItimer = 32

// MakeItimer splits an interval and a value given in 1/perSec seconds
// (perSec 1e6 for an itimerval, 1e9 for an itimerspec).
func MakeItimer(interval, value, perSec int64) Itimer {
	return Itimer{interval / perSec, interval % perSec, value / perSec, value % perSec}
}

// Join returns the interval and the value in 1/perSec seconds.
func (t *Itimer) Join(perSec int64) (interval, value int64) {
	return t.IntervalSec*perSec + t.IntervalRest, t.ValueSec*perSec + t.ValueRest
}

// Encode returns t in the kernel's layout.
func (t Itimer) Encode() []byte { return encode(t) }

// Decode reads t from b.
func (t *Itimer) Decode(b []byte) { decode(b[:SizeofItimer], t) }

// TFD_IOC_SET_TICKS (_IOW('T', 0, __u64)) sets the expirations a timerfd
// has that no read took yet (CONFIG_CHECKPOINT_RESTORE).
const TFD_IOC_SET_TICKS = 0x40085400
