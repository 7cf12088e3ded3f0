package client

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestStreamUpload writes an image into a Stream while a real transport
// sends it: the server gets every byte, in order.
func TestStreamUpload(t *testing.T) {
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"id":"abcdefghijklmnop"}`))
	}))
	defer srv.Close()
	cl, err := New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	s := NewStream()
	done := make(chan error, 1)
	go func() {
		_, err := cl.Upload(t.Context(), s)
		s.Abort(errors.New("upload over"))
		done <- err
	}()
	for i := range 50 {
		p := bytes.Repeat([]byte{byte(i)}, 1+i*40000)
		want.Write(p)
		if n, err := s.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatalf("Upload = %v", err)
	}
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Errorf("server got %d bytes; want the %d written", len(b), want.Len())
	}
	if _, err := s.Write([]byte("late")); err == nil {
		t.Error("Write after the upload = nil error")
	}
}

// TestStreamAbort: when the upload fails before the body is sent, the
// producer's writes fail instead of waiting forever; a producer's error
// fails the upload.
func TestStreamAbort(t *testing.T) {
	s := NewStream()
	go s.Abort(errors.New("connection refused"))
	if _, err := s.Write([]byte("x")); err == nil || err.Error() != "connection refused" {
		t.Errorf("Write after Abort = %v; want the abort's error", err)
	}

	s = NewStream()
	bad := errors.New("dump failed")
	s.CloseWithError(bad)
	if _, err := s.WriteTo(io.Discard); !errors.Is(err, bad) {
		t.Errorf("WriteTo after CloseWithError = %v; want %v", err, bad)
	}
}
