package linux

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestSysvIPCAgainstC checks struct ipc64_perm, semid64_ds and
// msqid64_ds and the System V constants against the kernel's headers.
func TestSysvIPCAgainstC(t *testing.T) {
	structs := []struct {
		v      any
		ctype  string
		fields map[string]string
	}{
		{&IPC64Perm{}, "struct ipc64_perm", map[string]string{"Key": "key", "UID": "uid", "GID": "gid",
			"CUID": "cuid", "CGID": "cgid", "Mode": "mode", "Seq": "seq"}},
		{&SemidDS{}, "struct semid64_ds", map[string]string{"Perm": "sem_perm", "Otime": "sem_otime",
			"Ctime": "sem_ctime", "Nsems": "sem_nsems"}},
		{&MsqidDS{}, "struct msqid64_ds", map[string]string{"Perm": "msg_perm", "Stime": "msg_stime",
			"Rtime": "msg_rtime", "Ctime": "msg_ctime", "Cbytes": "msg_cbytes", "Qnum": "msg_qnum",
			"Qbytes": "msg_qbytes", "Lspid": "msg_lspid", "Lrpid": "msg_lrpid"}},
	}
	consts := map[string]int64{"GETPID": GETPID, "GETALL": GETALL, "SETALL": SETALL,
		"SEM_STAT_ANY": SEM_STAT_ANY, "MSG_STAT_ANY": MSG_STAT_ANY, "MSG_NOERROR": MSG_NOERROR,
		"MSG_COPY":        MSG_COPY, // SHM_DEST is the kernel's own (glibc has it, the uapi not)
		"SizeofIPC64Perm": SizeofIPC64Perm, "SizeofSemidDS": SizeofSemidDS, "SizeofMsqidDS": SizeofMsqidDS}
	var src strings.Builder
	src.WriteString(`#include <stdio.h>
#include <stddef.h>
#include <linux/ipc.h>
#include <linux/sem.h>
#include <linux/msg.h>
#include <linux/shm.h>
#define SizeofIPC64Perm sizeof(struct ipc64_perm)
#define SizeofSemidDS sizeof(struct semid64_ds)
#define SizeofMsqidDS sizeof(struct msqid64_ds)
int main(void) {
`)
	want := map[string]int64{}
	for name, v := range consts {
		fmt.Fprintf(&src, "\tprintf(\"%s %%lld\\n\", (long long)(%s));\n", name, name)
		want[name] = v
	}
	for _, s := range structs {
		offs := map[string]int{}
		offsets(reflect.TypeOf(s.v).Elem(), 0, "", offs)
		for gof, cf := range s.fields {
			name := strings.ReplaceAll(s.ctype, " ", "_") + "." + gof
			fmt.Fprintf(&src, "\tprintf(\"%s %%zu\\n\", offsetof(%s, %s));\n", name, s.ctype, cf)
			want[name] = int64(offs[gof])
		}
	}
	src.WriteString("\treturn 0;\n}\n")
	compareC(t, cValues(t, src.String()), want)
}
