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
	got := buildFinal(recs).runs
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
