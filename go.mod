module procs

go 1.26.10

require (
	github.com/klauspost/compress v1.20.4
	github.com/pborman/getopt/v2 v2.2.0
	github.com/ulikunitz/xz v0.5.17
	golang.org/x/sys v0.50.0
)
