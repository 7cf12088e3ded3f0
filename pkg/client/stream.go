package client

import (
	"errors"
	"io"
	"sync"
)

// A Stream is an upload body that its producer writes, rather than one
// the transport reads: when the transport starts sending the body, it
// hands its writer to the Stream (WriteTo), and the producer's writes go
// to it directly. An image so goes from the producer's buffers to the
// socket without the extra copy of an io.Pipe.
//
// The producer ends the stream with Close or CloseWithError; the side
// that uploads calls Abort when the upload has ended (failed, or the
// server answered), after which the producer's writes fail. Upload never
// returns while a producer's write to the transport is in flight.
type Stream struct {
	mu      sync.Mutex
	cond    *sync.Cond
	w       io.Writer // the transport's, while WriteTo runs
	n       int64
	writing bool  // a producer's write to w is in flight
	ended   bool  // the producer closed
	endErr  error // its error, if any
	stopped error // set by Abort, or by a failed write to w
	done    bool  // WriteTo returned
}

// NewStream returns a Stream for Upload.
func NewStream() *Stream {
	s := &Stream{}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// errStreamDone is what a write gets once the transport has finished
// with the body.
var errStreamDone = errors.New("upload body already sent")

// Write sends p in the upload, waiting for the transport to start.
func (s *Stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	for s.w == nil && s.stopped == nil && !s.done {
		s.cond.Wait()
	}
	switch {
	case s.stopped != nil:
		s.mu.Unlock()
		return 0, s.stopped
	case s.done || s.ended:
		s.mu.Unlock()
		return 0, errStreamDone
	}
	w := s.w
	s.writing = true
	s.mu.Unlock()

	n, err := w.Write(p)

	s.mu.Lock()
	s.writing = false
	s.n += int64(n)
	if err != nil && s.stopped == nil {
		s.stopped = err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return n, err
}

// Close ends the body: the upload is complete.
func (s *Stream) Close() error { return s.CloseWithError(nil) }

// CloseWithError ends the body with err: the transport fails the upload.
func (s *Stream) CloseWithError(err error) error {
	s.mu.Lock()
	if !s.ended {
		s.ended, s.endErr = true, err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	return nil
}

// Abort tells the producer that the upload is over: its writes fail with
// err from now on.
func (s *Stream) Abort(err error) {
	s.mu.Lock()
	if s.stopped == nil {
		s.stopped = err
	}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// WriteTo lends w to the producer until it closes the stream or the
// upload is aborted, and returns what was written through it.
func (s *Stream) WriteTo(w io.Writer) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended && s.stopped == nil {
		s.w = w
		s.cond.Broadcast()
	}
	for (!s.ended && s.stopped == nil) || s.writing {
		s.cond.Wait()
	}
	s.w, s.done = nil, true
	s.cond.Broadcast()
	switch {
	case s.stopped != nil:
		return s.n, s.stopped
	case s.endErr != nil:
		return s.n, s.endErr
	}
	return s.n, nil
}

// Read is there for transports that read bodies: a Stream can only be
// sent with WriteTo.
func (s *Stream) Read([]byte) (int, error) {
	return 0, errors.New("client.Stream is sent with WriteTo, not read")
}
