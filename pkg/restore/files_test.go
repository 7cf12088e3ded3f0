package restore

import (
	"strings"
	"testing"

	"procs/format"
)

// TestValidateFileKinds: an open file of a kind this restorer does not
// know is refused by name, not opened by its path.
func TestValidateFileKinds(t *testing.T) {
	img := validImage()
	img.Files = append(img.Files, format.File{Kind: "socket", Path: "socket:[1]"})
	err := validate(img)
	if err == nil || !strings.Contains(err.Error(), `kind "socket"`) {
		t.Fatalf("validate = %v; want a refusal of kind \"socket\"", err)
	}
	img.Files = img.Files[:1]
	if err := validate(img); err != nil {
		t.Fatalf("validate of known kinds = %v", err)
	}
}
