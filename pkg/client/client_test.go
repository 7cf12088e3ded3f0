package client

import "testing"

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
