package format

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestScanCreds: the credentials read as a PROCESS record streams are
// those json.Unmarshal of the whole record into a Process gives, tricks
// included (another case, escapes, repeated members, nesting).
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
		{"not an object", `[1,2]`, true},
		{"trailing", `{"creds":{}} x`, true},
		{"cut", `{"creds":{"uid":[1,`, true},
		{"unbalanced", `{"a":[1}]}`, true},
		{"bad creds", `{"creds":{"uid":"root"}}`, true},
		{"control", "{\"a\":\"x\x01\"}", true},
	} {
		got, err := scanCreds(bufio.NewReader(strings.NewReader(tc.doc)))
		var p Process
		jerr := json.Unmarshal([]byte(tc.doc), &p)
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
		if !reflect.DeepEqual(got, p.Creds) {
			t.Errorf("%s: scanCreds = %+v; json.Unmarshal gives %+v", tc.name, got, p.Creds)
		}
	}
}

// FuzzScanCreds: whenever both accept a document, they agree.
func FuzzScanCreds(f *testing.F) {
	f.Add(`{"creds":{"uid":[1,2,3,4]},"CREDS":{"gid":[5,5,5,5]}}`)
	f.Add(`{"a":{"creds":[]},"cr\u0065ds":{"groups":[1]}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		got, err := scanCreds(bufio.NewReader(strings.NewReader(doc)))
		var p Process
		if jerr := json.Unmarshal([]byte(doc), &p); err == nil && jerr == nil && !reflect.DeepEqual(got, p.Creds) {
			t.Fatalf("scanCreds(%q) = %+v; json.Unmarshal gives %+v", doc, got, p.Creds)
		}
	})
}

// TestVerifyCredsTree: VerifyCreds gives the credentials of every
// PROCESS record of a tree, in record order; the FILES record, which
// holds none (a file's uid is not a process's), is not scanned.
func TestVerifyCredsTree(t *testing.T) {
	img := newBuilder().info().
		plain(TypeFiles, []byte(`{"files":[{"kind":"memfd","path":"/memfd:x","uid":0,"gid":0,"creds":{"uid":[0,0,0,0]}}]}`)).
		plain(TypeProcess, []byte(`{"pid":42,"ppid":1,"creds":{"uid":[1000,1000,1000,1000],"gid":[100,100,100,100],"groups":[]}}`)).
		plain(TypeProcess, []byte(`{"pid":43,"ppid":42}`)).
		plain(TypeProcess, []byte(`{"pid":44,"ppid":42,"creds":{"uid":[0,0,0,0],"gid":[0,0,0,0],"groups":[10]}}`)).
		taskPages(2, 0x1000, 1).end().b
	_, _, creds, err := VerifyCreds(bytes.NewReader(img), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Creds{
		{UID: [4]int{1000, 1000, 1000, 1000}, GID: [4]int{100, 100, 100, 100}, Groups: []int{}},
		{},
		{Groups: []int{10}},
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
