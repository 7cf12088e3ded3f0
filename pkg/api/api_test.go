package api

import (
	"encoding/base32"
	"net"
	"strconv"
	"testing"
)

func TestDefaultAddr(t *testing.T) {
	if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(DefaultPort)); DefaultAddr != want {
		t.Errorf("DefaultAddr = %q; want %q", DefaultAddr, want)
	}
}

func TestValidID(t *testing.T) {
	// What a server makes: 10 random bytes in IDAlphabet.
	made := base32.NewEncoding(IDAlphabet).WithPadding(base32.NoPadding).EncodeToString(make([]byte, 10))
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{made, true},
		{"m6pczam537k7rgjm", true},
		{"abcdefghijklmn27", true},
		{"", false},
		{"m6pczam537k7rgj", false},
		{"m6pczam537k7rgjmm", false},
		{"M6pczam537k7rgjm", false},
		{"m6pczam537k7rgj8", false},
		{"m6pczam537k7rgj1", false},
		{"../../etc/passwd", false},
		{"m6pczam537k7rgj/", false},
	} {
		if got := ValidID(tc.s); got != tc.want {
			t.Errorf("ValidID(%q) = %v; want %v", tc.s, got, tc.want)
		}
	}
}

func TestPaths(t *testing.T) {
	id := "m6pczam537k7rgjm"
	if got, want := ImagePath(id), "/v1/images/"+id; got != want {
		t.Errorf("ImagePath(%q) = %q; want %q", id, got, want)
	}
	if got, want := ClaimPath(id), "/v1/images/"+id+"/claim"; got != want {
		t.Errorf("ClaimPath(%q) = %q; want %q", id, got, want)
	}
	if PathImage != "/v1/images/{id}" || PathClaim != "/v1/images/{id}/claim" {
		t.Errorf("PathImage, PathClaim = %q, %q", PathImage, PathClaim)
	}
}
