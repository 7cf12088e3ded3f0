package server_test

import (
	"context"
	"io"
	"math/rand/v2"
	"testing"

	"procs/format"
	"procs/pkg/client"
	"procs/pkg/server"
)

const benchImage = 256 << 20 // bytes of memory in the benchmark's image

// writeBenchImage writes a valid image of size bytes of memory in runs of
// format.MaxPageRun, as procs-dump writes them.
func writeBenchImage(w io.Writer, size int) error {
	iw, err := format.NewWriter(w, format.Info{Comm: "bench", PID: 1, Host: "bench", Threads: 1}, format.WriterOptions{})
	if err != nil {
		return err
	}
	buf := make([]byte, format.MaxPageRun)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(buf); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	if err := iw.WriteJSON(format.TypeFiles, &format.FileTable{Files: []format.File{}}); err != nil {
		return err
	}
	if err := iw.WriteJSON(format.TypeProcess, &format.Process{PID: 1}); err != nil {
		return err
	}
	addr := uint64(0x400000)
	for left := size; left > 0; left -= len(buf) {
		n := min(left, len(buf))
		if err := iw.WritePages(0, addr, buf[:n]); err != nil {
			iw.Close()
			return err
		}
		addr += uint64(n)
	}
	return iw.Close()
}

// BenchmarkUpload streams a 256 MiB image into procs-serve on loopback
// through client.Upload, as procs send does (an image written into a pipe
// of unknown length), until the server answers 201; then fetches it back.
func BenchmarkUpload(b *testing.B) {
	ts := start(b, server.Config{})
	cl, err := client.New(ts.addr, "")
	if err != nil {
		b.Fatal(err)
	}
	var id string
	b.Run("upload", func(b *testing.B) {
		b.SetBytes(benchImage)
		for b.Loop() {
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(writeBenchImage(pw, benchImage)) }()
			e, err := cl.Upload(context.Background(), pr)
			pr.Close()
			if err != nil {
				b.Fatalf("Upload() = %v", err)
			}
			if id != "" {
				cl.Delete(context.Background(), id)
			}
			id = e.ID
		}
	})
	if id == "" {
		return
	}
	b.Run("fetch", func(b *testing.B) {
		b.SetBytes(benchImage)
		buf := make([]byte, format.PageBufSize)
		for b.Loop() {
			r, err := cl.Fetch(context.Background(), id)
			if err != nil {
				b.Fatalf("Fetch() = %v", err)
			}
			rd, err := format.NewReader(r)
			if err != nil {
				b.Fatal(err)
			}
			for {
				h, err := rd.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				if h.Type == format.TypePages {
					_, _, _, err = rd.ReadPages(buf)
				} else {
					_, err = rd.Payload()
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			r.Close()
		}
	})
}
