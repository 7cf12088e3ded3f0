package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"procs/format"
	"procs/pkg/api"
)

// Exceeds returns what of creds (the credentials of each PROCESS record
// of an image: its process's and its threads' own, which a restore gives
// each thread) the identity id could not grant a process, or "" when
// nothing: root grants anything; anyone else only its own uid, as every
// one of the real, effective, saved and fs uids, and its own groups
// (api.Identity.Groups) as gids and supplementary groups. An image records no
// capabilities: a process gets them only by running as uid 0, which only
// root grants. A nil id grants nothing.
func Exceeds(creds []format.ProcessCreds, id *api.Identity) string {
	if id != nil && id.UID == 0 {
		return ""
	}
	var all []format.Creds
	for _, pc := range creds {
		all = append(all, pc.All()...)
	}
	var uids, gids, groups []int
	for _, c := range all {
		for _, u := range c.UID {
			if id == nil || u != id.UID {
				uids = append(uids, u)
			}
		}
		for _, g := range c.GID {
			if id == nil || !slices.Contains(id.Groups, g) {
				gids = append(gids, g)
			}
		}
		for _, g := range c.Groups {
			if id == nil || !slices.Contains(id.Groups, g) {
				groups = append(groups, g)
			}
		}
	}
	var out []string
	for _, l := range []struct {
		name string
		ids  []int
	}{{"uid", uids}, {"gid", gids}, {"group", groups}} {
		slices.Sort(l.ids)
		for i, v := range slices.Compact(l.ids) {
			if i == 4 {
				out = append(out, "...")
				break
			}
			out = append(out, fmt.Sprintf("%s %d", l.name, v))
		}
	}
	return strings.Join(out, ", ")
}

// unchecked is the verdict on an image stored before procs-serve
// recorded uploaders.
const unchecked = "credentials not checked (stored by an older procs-serve)"

// trustHeaders says who uploaded image e, and what of its credentials
// that uploader could not grant (api.HeaderUploader, api.HeaderExceeds).
func trustHeaders(h http.Header, e *api.Entry) {
	h.Set(api.HeaderUploader, e.Uploader.String())
	switch {
	case e.Uploader == nil:
		h.Set(api.HeaderExceeds, unchecked)
	case e.Exceeds != "":
		h.Set(api.HeaderExceeds, e.Exceeds)
	}
}

// isWrite tells the requests that change the store, which need an
// identity.
func isWrite(r *http.Request) bool {
	return r.Method != http.MethodGet && r.Method != http.MethodHead
}
