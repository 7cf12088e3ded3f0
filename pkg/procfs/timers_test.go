package procfs

import (
	"reflect"
	"testing"
)

func TestParsePosixTimers(t *testing.T) {
	in := "ID: 0\nsignal: 32/0000556f1f8e5d70\nnotify: signal/tid.558\nClockID: 1\n" +
		"ID: 6\nsignal: 14/0000000000000000\nnotify: none/pid.499\nClockID: 0\n"
	got, err := parsePosixTimers(in)
	want := []PosixTimer{
		{ID: 0, Signo: 32, Value: 0x556f1f8e5d70, Notify: 4, Target: 558, Clock: 1},
		{ID: 6, Signo: 14, Notify: 1, Target: 499, Clock: 0},
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("parsePosixTimers = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"signal: 14/0\n", "ID: x\n", "ID: 1\nnotify: bogus/pid.1\n", "ID: 1\nnotify: signal/xid.1\n", "junk\n"} {
		if _, err := parsePosixTimers(bad); err == nil {
			t.Errorf("parsePosixTimers(%q) = nil error", bad)
		}
	}
	if ts, err := parsePosixTimers(""); err != nil || len(ts) != 0 {
		t.Errorf("parsePosixTimers(\"\") = %v, %v; want none", ts, err)
	}
}
