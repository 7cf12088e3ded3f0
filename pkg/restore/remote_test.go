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

// TestAround checks which records come with one a thread waits for:
// the small memory records of its process beside it, up to prefetchRun
// bytes, none asked for or given by the stream already; and that a
// record just ahead of the stream is left to it.
func TestAround(t *testing.T) {
	const p = format.PageSize
	small, big := int64(36+p), int64(36+256*p)
	var recs []Record
	add := func(typ format.RecordType, size int64) {
		off := int64(24)
		if n := len(recs); n > 0 {
			off = recs[n-1].Offset + recs[n-1].Size
		}
		recs = append(recs, Record{Offset: off, Size: size, Type: typ, Addr: uint64(len(recs)) * 1024 * p, Len: uint64(size-36) / p * p})
	}
	add(format.TypeInfo, 100)
	add(format.TypeFiles, 50)
	add(format.TypePages, big)   // 2
	add(format.TypePages, small) // 3
	add(format.TypePages, small) // 4: the one waited for
	add(format.TypePass, small)  // 5
	add(format.TypeDrop, 48)     // 6
	add(format.TypePages, small) // 7
	add(format.TypePages, small) // 8: of process 1
	add(format.TypeEnd, 48)
	recs[8].Task = 1
	r := &remote{Remote: &Remote{Records: recs}, asked: map[int]bool{}, want: make(chan int, 8)}
	r.streamAt.Store(-1)
	if lo, hi := r.around(4); lo != 3 || hi != 6 {
		t.Errorf("around(4) = [%d, %d); want [3, 6): the small PAGES and PASS beside it, not past the DROP nor the big one", lo, hi)
	}
	if lo, hi := r.around(2); lo != 2 || hi != 3 {
		t.Errorf("around(2), 3 asked already = [%d, %d); want [2, 3)", lo, hi)
	}
	r.asked = map[int]bool{}
	r.streamAt.Store(recs[4].Offset)
	if lo, hi := r.around(4); lo != 4 || hi != 6 {
		t.Errorf("around(4), the stream at 4 = [%d, %d); want [4, 6)", lo, hi)
	}
	r.asked = map[int]bool{}
	if lo, hi := r.around(7); lo != 7 || hi != 8 {
		t.Errorf("around(7), 8 of another process = [%d, %d); want [7, 8)", lo, hi)
	}
	r.asked = map[int]bool{}
	r.final = finalMaps{0: buildFinal(recs, 0), 1: buildFinal(recs, 1)}
	r.ask(0, recs[7].Addr)
	if len(r.want) != 0 {
		t.Errorf("a record %d bytes ahead of the stream was asked for; want it left to the stream", recs[7].Offset-recs[4].Offset)
	}
	r.ask(0, recs[2].Addr)
	if len(r.want) != 1 {
		t.Errorf("a record behind the stream was not asked for")
	}
}
