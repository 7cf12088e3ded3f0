// httpgo is a Go net/http server for the TCP tests: it listens on the
// address given, answers every request with "hello N", N counting the
// requests it served (its state), and writes "listening" to stdout once
// it listens.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sync/atomic"
)

func main() {
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	var n atomic.Int64
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %d\n", n.Add(1))
	}))
}
