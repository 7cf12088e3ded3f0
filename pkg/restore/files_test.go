package restore

import (
	"strings"
	"testing"

	"procs/format"
)

// TestValidateFileKinds: an open file of a kind this restorer does not
// know is refused by name, not opened by its path.
func TestValidateFileKinds(t *testing.T) {
	img, fs := validImage()
	fs = append(fs, format.File{Kind: "socket", Path: "socket:[1]"})
	err := validateImage(img, fs)
	if err == nil || !strings.Contains(err.Error(), `kind "socket"`) {
		t.Fatalf("validate = %v; want a refusal of kind \"socket\"", err)
	}
	if err := validateImage(img, fs[:2]); err != nil {
		t.Fatalf("validate of known kinds = %v", err)
	}
}
