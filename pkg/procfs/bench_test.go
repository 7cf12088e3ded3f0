package procfs

import "testing"

func BenchmarkMaps(b *testing.B) {
	pid, info := startHelper(b, "bench")
	ms, err := Maps(pid)
	if err != nil {
		b.Fatal(err)
	}
	if len(ms) < info.ManyCount {
		b.Fatalf("Maps(%d) = %d mappings; want at least %d", pid, len(ms), info.ManyCount)
	}
	b.ReportAllocs()
	b.ReportMetric(float64(len(ms)), "mappings")
	for b.Loop() {
		if _, err := Maps(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSmaps(b *testing.B) {
	pid, _ := startHelper(b, "bench")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Smaps(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func benchScan(b *testing.B, slow bool) {
	pid, info := startHelper(b, "bench")
	stopped(b, pid)
	pm, err := OpenPagemap(pid)
	if err != nil {
		b.Fatal(err)
	}
	defer pm.Close()
	scan := pm.Scan
	if slow {
		scan = pm.ScanSlow
	}
	lo, hi := info.Big, info.Big+info.BigLen
	rs, err := scan(lo, hi, PageIsPresent|PageIsSwapped, PageIsPFNZero)
	if err != nil {
		b.Fatal(err)
	}
	if want := int(info.BigLen / pageSize / 2); len(rs) != want {
		b.Fatalf("Scan(big) = %d regions; want %d", len(rs), want)
	}
	b.ReportAllocs()
	b.ReportMetric(float64(len(rs)), "regions")
	b.SetBytes(int64(info.BigLen))
	for b.Loop() {
		if _, err := scan(lo, hi, PageIsPresent|PageIsSwapped, PageIsPFNZero); err != nil {
			b.Fatal(err)
		}
	}
}

// 256 MiB, every other page written: 32768 regions.
func BenchmarkScan(b *testing.B)     { benchScan(b, false) }
func BenchmarkScanSlow(b *testing.B) { benchScan(b, true) }

func BenchmarkFDs(b *testing.B) {
	pid, _ := startHelper(b, "basic")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FDs(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadStat(b *testing.B) {
	pid, _ := startHelper(b, "basic")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadStat(pid); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadStatus(b *testing.B) {
	pid, _ := startHelper(b, "basic")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadStatus(pid); err != nil {
			b.Fatal(err)
		}
	}
}
