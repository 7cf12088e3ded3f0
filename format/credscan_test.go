package format

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// scan is scanCreds of doc with a table of its own.
func scan(doc string) (ProcessCreds, error) {
	return scanCreds(bufio.NewReader(strings.NewReader(doc)), &credsTable{})
}

// decoded is what json.Unmarshal of doc into a Process gives, as
// scanCreds says it: the process's credentials, and the distinct ones of
// the threads that have their own, in order.
func decoded(doc string) (ProcessCreds, error) {
	var p Process
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return ProcessCreds{}, err
	}
	pc := ProcessCreds{Creds: p.Creds}
	for _, th := range p.Threads {
		if th.Creds != nil && !slices.ContainsFunc(pc.Threads, func(c Creds) bool { return reflect.DeepEqual(c, *th.Creds) }) {
			pc.Threads = append(pc.Threads, *th.Creds)
		}
	}
	return pc, nil
}

// TestScanCreds: the credentials read as a PROCESS record streams are
// those json.Unmarshal of the whole record into a Process gives, the
// process's and its threads', tricks included (another case, escapes,
// repeated members, nesting, a second threads array decoding into the
// elements of the first).
func TestScanCreds(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		bad       bool
	}{
		{"plain", `{"pid":1,"creds":{"uid":[5,5,5,5],"gid":[6,6,6,6],"groups":[7]}}`, false},
		{"none", `{"pid":1}`, false},
		{"case", `{"CReds":{"uid":[0,0,0,0]}}`, false},
		{"escaped key", `{"cr\u0065ds":{"uid":[0,1,2,3]}}`, false},
		{"repeated, merged", `{"creds":{"uid":[1,1,1,1]},"creds":{"gid":[2,2,2,2]}}`, false},
		{"repeated, replaced", `{"creds":{"uid":[1,1,1,1]},"Creds":{"uid":[0,0,0,0]}}`, false},
		{"nested", `{"maps":[{"creds":{"uid":[0,0,0,0]}}],"x":{"creds":1},"creds":{"uid":[9,9,9,9]}}`, false},
		{"strings", `{"comm":"a\"b\\c}{][","creds":{"uid":[3,3,3,3]},"s":"creds"}`, false},
		{"null", `{"creds":null}`, false},
		{"space", " \n{ \"creds\" :\t{ \"uid\" : [ 4 , 4 , 4 , 4 ] } }\n", false},
		{"literals", `{"a":true,"b":false,"c":null,"d":-1.5e3,"creds":{"no_new_privs":true}}`, false},
		{"thread", `{"creds":{"uid":[5,5,5,5]},"threads":[{"tid":1},{"tid":2,"creds":{"uid":[0,0,0,0],"gid":[5,5,5,5]}}]}`, false},
		{"threads, each", `{"threads":[{"creds":{"uid":[1,1,1,1]}},{"creds":{"uid":[2,2,2,2]}},{"creds":{"uid":[1,1,1,1]}}]}`, false},
		{"thread, case and escapes", `{"THREADS":[{"cReDs":{"uid":[0,0,0,0]}}],"thr\u0065ads":[{"tid":1},{"\u0063reds":{"gid":[0,0,0,0]}}]}`, false},
		{"thread, merged", `{"threads":[{"creds":{"uid":[0,0,0,0]},"creds":{"gid":[5,5,5,5],"groups":[1]}}]}`, false},
		{"thread, cleared", `{"threads":[{"creds":{"uid":[0,0,0,0]},"creds":null}]}`, false},
		{"threads again, reused", `{"threads":[{"creds":{"uid":[0,0,0,0]}}],"threads":[{"tid":7}]}`, false},
		{"threads again, shorter then longer", `{"threads":[{},{"creds":{"uid":[0,0,0,0]}}],"threads":[{}],"threads":[{},{}]}`, false},
		{"threads again, after null", `{"threads":[{"creds":{"uid":[0,0,0,0]}}],"threads":null,"threads":[{}]}`, false},
		{"threads again, after empty", `{"threads":[{"creds":{"uid":[0,0,0,0]}}],"threads":[],"threads":[{}]}`, false},
		{"thread null element", `{"threads":[{"creds":{"uid":[0,0,0,0]}}],"threads":[null]}`, false},
		{"threads null", `{"threads":null}`, false},
		{"threads empty", `{"threads":[ ]}`, false},
		{"thread creds elsewhere", `{"threads":[{"seccomp":{"creds":{"uid":[0,0,0,0]}},"x":[{"creds":1}]}],"y":{"threads":[{"creds":{"uid":[0,0,0,0]}}]}}`, false},
		{"not an object", `[1,2]`, true},
		{"trailing", `{"creds":{}} x`, true},
		{"cut", `{"creds":{"uid":[1,`, true},
		{"cut in threads", `{"threads":[{"creds":{}},`, true},
		{"unbalanced", `{"a":[1}]}`, true},
		{"bad creds", `{"creds":{"uid":"root"}}`, true},
		{"bad thread creds", `{"threads":[{"creds":{"uid":"root"}}]}`, true},
		{"thread creds not an object", `{"threads":[{"creds":[0]}]}`, true},
		{"threads not an array", `{"threads":{"creds":{}}}`, true},
		{"thread not an object", `{"threads":[1]}`, true},
		{"control", "{\"a\":\"x\x01\"}", true},
	} {
		got, err := scan(tc.doc)
		want, jerr := decoded(tc.doc)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: scanCreds(%q) = %+v; want an error", tc.name, tc.doc, got)
			}
			if jerr == nil {
				t.Errorf("%s: json.Unmarshal accepts %q", tc.name, tc.doc)
			}
			continue
		}
		if err != nil || jerr != nil {
			t.Errorf("%s: scanCreds = %v, json.Unmarshal = %v; want both to accept %q", tc.name, err, jerr, tc.doc)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: scanCreds = %+v; json.Unmarshal gives %+v", tc.name, got, want)
		}
	}
}

// FuzzScanCreds: whenever both accept a document, they agree, on the
// process's credentials and on its threads'.
func FuzzScanCreds(f *testing.F) {
	f.Add(`{"creds":{"uid":[1,2,3,4]},"CREDS":{"gid":[5,5,5,5]}}`)
	f.Add(`{"a":{"creds":[]},"cr\u0065ds":{"groups":[1]}}`)
	f.Add(`{"threads":[{"tid":1},{"creds":{"uid":[0,0,0,0]}}],"Threads":[{"creds":null}]}`)
	f.Add(`{"threads":[{},{"creds":{"gid":[1,1,1,1]}},{}],"threads":[null],"threads":[{},{"creds":{"uid":[2]}}],"threads":[]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		got, err := scan(doc)
		if want, jerr := decoded(doc); err == nil && jerr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("scanCreds(%q) = %+v; json.Unmarshal gives %+v", doc, got, want)
		}
	})
}

// TestScanCredsLimits: a record of more than MaxThreads threads, and an
// image whose distinct credentials take more than MaxCredsBytes, are
// refused; the same credentials again cost nothing.
func TestScanCredsLimits(t *testing.T) {
	many := `{"threads":[` + strings.Repeat(`{},`, MaxThreads) + `{}]}`
	if _, err := scan(many); err == nil || !strings.Contains(err.Error(), "more than 65536 threads") {
		t.Errorf("scanCreds of %d threads = %v; want more than 65536 threads", MaxThreads+1, err)
	}
	if _, err := scan(`{"threads":[` + strings.Repeat(`{},`, MaxThreads-1) + `{}]}`); err != nil {
		t.Errorf("scanCreds of %d threads = %v; want them", MaxThreads, err)
	}
	var b strings.Builder
	b.WriteString(`{"threads":[`)
	for i := range 20000 {
		fmt.Fprintf(&b, `{"creds":{"uid":[%d,1000,1000,1000],"gid":[1000,1000,1000,1000],"groups":[1000,1000]}},`, 1000+i%2)
	}
	b.WriteString(`{}]}`)
	if got, err := scan(b.String()); err != nil || len(got.Threads) != 2 {
		t.Errorf("scanCreds of 20000 threads of 2 credentials = %d, %v; want 2 distinct", len(got.Threads), err)
	}
	b.Reset()
	b.WriteString(`{"threads":[`)
	for i := range 20000 {
		fmt.Fprintf(&b, `{"creds":{"uid":[%d,1000,1000,1000],"gid":[1000,1000,1000,1000],"groups":[1000,1000]}},`, i)
	}
	b.WriteString(`{}]}`)
	if _, err := scan(b.String()); err == nil || !strings.Contains(err.Error(), "credentials of more than") {
		t.Errorf("scanCreds of 20000 distinct credentials = %v; want credentials of more than %d bytes", err, MaxCredsBytes)
	}
}

// TestVerifyCredsTree: VerifyCreds gives the credentials of every
// PROCESS record of a tree, in record order, with those of their threads;
// the FILES record, which holds none (a file's uid is not a process's),
// is not scanned.
func TestVerifyCredsTree(t *testing.T) {
	img := newBuilder().info().
		plain(TypeFiles, []byte(`{"files":[{"kind":"memfd","path":"/memfd:x","uid":0,"gid":0,"creds":{"uid":[0,0,0,0]}}]}`)).
		plain(TypeProcess, []byte(`{"pid":42,"ppid":1,"creds":{"uid":[1000,1000,1000,1000],"gid":[100,100,100,100],"groups":[]}}`)).
		plain(TypeProcess, []byte(`{"pid":43,"ppid":42,"threads":[{"tid":43},{"tid":45,"creds":{"uid":[0,0,0,0],"gid":[100,100,100,100]}}]}`)).
		plain(TypeProcess, []byte(`{"pid":44,"ppid":42,"creds":{"uid":[0,0,0,0],"gid":[0,0,0,0],"groups":[10]}}`)).
		taskPages(2, 0x1000, 1).end().b
	_, _, creds, err := VerifyCreds(bytes.NewReader(img), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []ProcessCreds{
		{Creds: Creds{UID: [4]int{1000, 1000, 1000, 1000}, GID: [4]int{100, 100, 100, 100}, Groups: []int{}}},
		{Threads: []Creds{{GID: [4]int{100, 100, 100, 100}}}},
		{Creds: Creds{Groups: []int{10}}},
	}
	if !reflect.DeepEqual(creds, want) {
		t.Errorf("VerifyCreds = %+v; want %+v", creds, want)
	}
	// A PROCESS record that is not an object is refused, whichever it is.
	img = newBuilder().info().files().process(42, 1).plain(TypeProcess, []byte(`[43]`)).end().b
	if _, _, _, err := VerifyCreds(bytes.NewReader(img), Limits{}); err == nil || !strings.Contains(err.Error(), "bad JSON") {
		t.Errorf("VerifyCreds of a second PROCESS record that is an array = %v; want bad JSON", err)
	}
}
