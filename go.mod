module procs

go 1.26.10

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/pborman/getopt/v2 v2.2.0 // indirect
	github.com/ulikunitz/xz v0.5.17 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
