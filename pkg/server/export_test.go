package server

// What the tests of package server_test see of a running server, to wait
// for a request to be in its hands (not only sent: on a loaded machine
// the server may take long to accept and read it) before they act.

// Waiting returns how many requests wait for the next image.
func (s *Server) Waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.idx.waiters)
}

// Uploads returns how many uploads run and how many wait for a place.
func (s *Server) Uploads() (running, queued int) {
	return len(s.uploads), len(s.queue)
}
