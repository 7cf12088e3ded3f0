package client

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseServer(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"hostb", "http://hostb:7627"},
		{"hostb:80", "http://hostb:80"},
		{"192.56.1.101", "http://192.56.1.101:7627"},
		{"10.0.0.1:9000", "http://10.0.0.1:9000"},
		{"::1", "http://[::1]:7627"},
		{"[::1]:9000", "http://[::1]:9000"},
		{"https://hostb", "https://hostb:7627"},
		{"http://hostb:1/", "http://hostb:1"},
		{"", ""},
		{"host:0", ""},
		{"host:x", ""},
		{"a/b", ""},
		{"http://[::1", ""},
		{"::1]", ""},
		{"[::1]", "http://[::1]:7627"},
	} {
		got, err := ParseServer(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseServer(%q) = %q; want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseServer(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestPlainToTLS: plain HTTP to a server that speaks HTTPS is told to use
// https://, not just "400 Bad Request".
func TestPlainToTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // its handshake error
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	cl, err := New("http://"+host, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.List(t.Context())
	if want := "give it as https://" + host; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("List over plain HTTP = %v; want it to say %q", err, want)
	}
}
