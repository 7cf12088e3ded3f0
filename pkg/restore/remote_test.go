package restore

import (
	"slices"
	"testing"

	"procs/format"
)

// TestBuildFinal checks that each page's last copy is the last record
// holding it, and that a DROP after it leaves a hole.
func TestBuildFinal(t *testing.T) {
	const p = format.PageSize
	recs := []Record{
		{Type: format.TypeInfo},
		{Type: format.TypePass, Addr: 0, Len: 3 * p},
		{Type: format.TypePass, Addr: p, Len: p},
		{Type: format.TypeDrop, Addr: 2 * p, Len: p},
		{Type: format.TypeFiles},
		{Type: format.TypePages, Addr: 5 * p, Len: p},
		{Type: format.TypePages, Addr: 6 * p, Len: 2 * p},
	}
	got := buildFinal(recs, 0).runs
	want := []finalRun{{0, p, 1}, {p, 2 * p, 2}, {5 * p, 6 * p, 5}, {6 * p, 8 * p, 6}}
	if !slices.Equal(got, want) {
		t.Errorf("buildFinal = %v; want %v", got, want)
	}
	f := finalMap{runs: got}
	if _, ok := f.at(2 * p); ok {
		t.Errorf("at(2p) holds a record; want a hole (dropped)")
	}
	if i, ok := f.at(p + 5); !ok || i != 2 {
		t.Errorf("at(p+5) = %d, %v; want 2", i, ok)
	}
	if got := f.pieces(0, 3*p, 1); !slices.Equal(got, [][2]uint64{{0, p}}) {
		t.Errorf("pieces(0, 3p, 1) = %v; want [[0 p]]", got)
	}
}

// TestNewRemoteRefuses checks that a server's list of records that
// cannot be the image's is refused before anything is read.
func TestNewRemoteRefuses(t *testing.T) {
	const p = format.PageSize
	good := func() []Record {
		return []Record{
			{Offset: 24, Size: 100, Type: format.TypeInfo},
			{Offset: 124, Size: 50, Type: format.TypeFiles},
			{Offset: 174, Size: 50, Type: format.TypeProcess},
			{Offset: 224, Size: 36 + p, Type: format.TypePages, Addr: p, Len: p},
			{Offset: 260 + p, Size: 48, Type: format.TypeEnd},
		}
	}
	fetch := func(off, n int64) ([]byte, error) { return make([]byte, n), nil }
	if _, _, err := newRemote(&Remote{Records: good(), Fetch: fetch}); err != nil {
		t.Fatalf("newRemote(good) = %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(r []Record) []Record
	}{
		{"gap", func(r []Record) []Record { r[2].Offset++; return r }},
		{"not INFO first", func(r []Record) []Record { r[0].Type = format.TypeFiles; return r }},
		{"no END", func(r []Record) []Record { return r[:4] }},
		{"no FILES", func(r []Record) []Record { r[1].Type = format.TypeFileData; return r }},
		{"unaligned", func(r []Record) []Record { r[3].Addr++; return r }},
		{"no memory", func(r []Record) []Record { r[3].Len = 0; return r }},
		{"wrapping", func(r []Record) []Record { r[3].Addr = ^uint64(0) &^ (p - 1); return r }},
		{"tiny", func(r []Record) []Record { r[2].Size = 3; return r }},
	} {
		if _, _, err := newRemote(&Remote{Records: tc.edit(good()), Fetch: fetch}); err == nil {
			t.Errorf("newRemote(%s) = nil; want a refusal", tc.name)
		}
	}
	// Memory of a process the image does not hold, once its processes
	// are known.
	recs := good()
	recs[3].Task = 1
	r, _, err := newRemote(&Remote{Records: recs, Fetch: fetch})
	if err != nil {
		t.Fatalf("newRemote(memory of process 1) = %v", err)
	}
	if err := r.checkTasks(1); err == nil {
		t.Errorf("checkTasks(1) of memory of process 1 = nil; want a refusal")
	}
	if err := r.checkTasks(2); err != nil {
		t.Errorf("checkTasks(2) of memory of process 1 = %v; want nil", err)
	}
}
