package format

// Compression names how page records are compressed.
type Compression int

const (
	None Compression = iota
	Zstd
	XZ
)
