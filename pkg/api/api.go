// Package api is the wire contract between procs-serve and its clients
// (procs-fetch, procs): what both sides of the HTTP interface must agree
// on, and nothing else. It holds the shape of an image id, the paths and
// their query parameters, the header names, the JSON bodies (an image
// entry with its uploader, an error), the bearer scheme and the default
// address.
//
// Both pkg/server and pkg/client import it; it imports neither, nor the
// image format, so that a client links no store, no handlers and no
// codec. How each side behaves (what the server checks, stores and
// answers; how the client retries or refuses) stays in its own package.
//
// The interface is documented in man/procs-serve.8; a change here is a
// change of that interface.
package api

// DefaultPort is the port procs-serve listens on, and clients connect to,
// unless told otherwise.
const DefaultPort = 7627

// DefaultAddr is the local server: where procs-serve listens, and what
// clients connect to, unless told otherwise.
const DefaultAddr = "127.0.0.1:7627"

// Paths. PathImage and PathClaim are http.ServeMux patterns, with the id
// as the wildcard {id}; ImagePath and ClaimPath fill it in.
const (
	// PathImages: POST uploads an image (answer 201 and its Entry); GET
	// and HEAD list the images (an array of Entry, oldest first).
	PathImages = "/v1/images"
	// PathImage: GET and HEAD fetch an image; DELETE removes it, or,
	// with HeaderClaim, commits that claim.
	PathImage = PathImages + "/{id}"
	// PathClaim: POST claims an image (QueryHold); DELETE, with
	// HeaderClaim, releases the claim.
	PathClaim = PathImage + "/claim"
	// PathNext: GET waits for the next image to arrive and answers its
	// Entry (QueryAfter, QueryTimeout).
	PathNext = "/v1/next"
	// PathRecords: GET lists the records of an image (an array of
	// Record), for a reader that asks for parts of it by range (a lazy
	// restore).
	PathRecords = PathImage + "/records"
)

// RecordsPath returns the path of the record list of image id.
func RecordsPath(id string) string { return ImagePath(id) + "/records" }

// MaxRecords is the most records GET PathRecords lists: an image with
// more is answered 409.
const MaxRecords = 1 << 20

// Record is one record of a stored image, where it lies and, for memory
// records (PAGES, PASS, DROP: types 3, 0x12, 0x13), whose memory it
// holds. The list is the server's word: a reader checks each part it
// fetches, and the whole image as it streams.
type Record struct {
	Offset int64  `json:"offset"` // of the record header
	Size   int64  `json:"size"`   // header and stored payload
	Type   uint16 `json:"type"`
	Task   uint32 `json:"task,omitempty"`
	Addr   uint64 `json:"addr,omitempty"`
	Len    uint64 `json:"len,omitempty"` // bytes of memory
}

// ImagePath returns the path of image id. Only a ValidID may go into it.
func ImagePath(id string) string { return PathImages + "/" + id }

// ClaimPath returns the path of the claim on image id.
func ClaimPath(id string) string { return ImagePath(id) + "/claim" }

// Query parameters.
const (
	// QueryHold, of POST PathClaim: how long, in seconds, the claim
	// waits for its commit after the image was sent.
	QueryHold = "hold"
	// QueryAfter, of GET PathNext: the id of an image; the answer is
	// the first image that arrived after it.
	QueryAfter = "after"
	// QueryTimeout, of GET PathNext: how long, in seconds, to wait
	// before answering 204 No Content.
	QueryTimeout = "timeout"
)

// Header names.
const (
	// HeaderOrigin, of an upload: the sender's host name, a label.
	HeaderOrigin = "X-Procs-Origin"
	// HeaderComm, of an image sent: its process name, quoted as Go
	// quotes a string.
	HeaderComm = "X-Procs-Comm"
	// HeaderPID, of an image sent: its original PID.
	HeaderPID = "X-Procs-Pid"
	// HeaderUploader, of an image sent: who uploaded it, as
	// Identity.String says it.
	HeaderUploader = "X-Procs-Uploader"
	// HeaderExceeds, of an image sent, when present: the credentials of
	// the image that its uploader could not grant ("uid 0, gid 0").
	// Clients refuse an image whose answer has it, or lacks
	// HeaderUploader, unless told to trust it.
	HeaderExceeds = "X-Procs-Exceeds"
	// HeaderClaim carries the token of a claim: in the answer to POST
	// PathClaim, and in the DELETE that commits or releases it.
	HeaderClaim = "X-Procs-Claim"
)

// BearerScheme is the scheme of the Authorization header that presents a
// token: "Authorization: Bearer TOKEN". Servers match it in any case.
const BearerScheme = "Bearer"

// ErrorBody is the body of every answer with a 4xx or 5xx status that
// the server writes itself: {"error": "message"}.
type ErrorBody struct {
	Error string `json:"error"`
}
