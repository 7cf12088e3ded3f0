package linux

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A layout is one struct of the package with the C type and members it
// mirrors.
type layout struct {
	v      codec
	size   int
	ctype  string
	fields map[string]string // Go field: C member
}

type codec interface {
	Encode() []byte
	Decode([]byte)
}

var layouts = []layout{
	{&SigAction{}, SizeofSigAction, "struct sigaction", map[string]string{
		"Handler": "sa_handler", "Flags": "sa_flags", "Restorer": "sa_restorer", "Mask": "sa_mask"}},
	{&StackT{}, SizeofStackT, "stack_t", map[string]string{
		"SP": "ss_sp", "Flags": "ss_flags", "Size": "ss_size"}},
	{&Sigevent{}, SizeofSigevent, "struct sigevent", map[string]string{
		"Value": "sigev_value", "Signo": "sigev_signo", "Notify": "sigev_notify", "ThreadID": "_sigev_un._tid"}},
	{&CloneArgs{}, CLONE_ARGS_SIZE_VER2, "struct clone_args", map[string]string{
		"Flags": "flags", "Pidfd": "pidfd", "ChildTID": "child_tid", "ParentTID": "parent_tid",
		"ExitSignal": "exit_signal", "Stack": "stack", "StackSize": "stack_size", "TLS": "tls",
		"SetTID": "set_tid", "SetTIDSize": "set_tid_size", "Cgroup": "cgroup"}},
	{&PrctlMMMap{}, SizeofPrctlMMMap, "struct prctl_mm_map", map[string]string{
		"StartCode": "start_code", "EndCode": "end_code", "StartData": "start_data", "EndData": "end_data",
		"StartBrk": "start_brk", "Brk": "brk", "StartStack": "start_stack", "ArgStart": "arg_start",
		"ArgEnd": "arg_end", "EnvStart": "env_start", "EnvEnd": "env_end", "Auxv": "auxv",
		"AuxvSize": "auxv_size", "ExeFD": "exe_fd"}},
	{&Itimer{}, SizeofItimer, "struct __kernel_itimerspec", map[string]string{
		"IntervalSec": "it_interval.tv_sec", "IntervalRest": "it_interval.tv_nsec",
		"ValueSec": "it_value.tv_sec", "ValueRest": "it_value.tv_nsec"}},
	{&Itimer{}, SizeofItimer, "struct __kernel_old_itimerval", map[string]string{
		"IntervalSec": "it_interval.tv_sec", "IntervalRest": "it_interval.tv_usec",
		"ValueSec": "it_value.tv_sec", "ValueRest": "it_value.tv_usec"}},
	{&EpollEvent{}, SizeofEpollEvent, "struct epoll_event", map[string]string{
		"Events": "events", "Data": "data"}},
	{&SockFprog{}, SizeofSockFprog, "struct sock_fprog", map[string]string{
		"Len": "len", "Filter": "filter"}},
	{&RtSigframe{}, SizeofRtSigframe, "struct { void *pretcode; struct ucontext uc; }", map[string]string{
		"Pretcode": "pretcode", "UC.Flags": "uc.uc_flags", "UC.Link": "uc.uc_link",
		"UC.Stack.SP": "uc.uc_stack.ss_sp", "UC.Stack.Flags": "uc.uc_stack.ss_flags", "UC.Stack.Size": "uc.uc_stack.ss_size",
		"UC.Mcontext.R8": "uc.uc_mcontext.r8", "UC.Mcontext.R15": "uc.uc_mcontext.r15",
		"UC.Mcontext.Rdi": "uc.uc_mcontext.rdi", "UC.Mcontext.Rip": "uc.uc_mcontext.rip",
		"UC.Mcontext.Eflags": "uc.uc_mcontext.eflags", "UC.Mcontext.Cs": "uc.uc_mcontext.cs",
		"UC.Mcontext.Ss": "uc.uc_mcontext.ss", "UC.Mcontext.Cr2": "uc.uc_mcontext.cr2",
		"UC.Mcontext.Fpstate": "uc.uc_mcontext.fpstate", "UC.Sigmask": "uc.uc_sigmask"}},
	{&FpxSwBytes{}, SizeofFpxSwBytes, "struct _fpx_sw_bytes", map[string]string{
		"Magic1": "magic1", "ExtendedSize": "extended_size", "Xfeatures": "xfeatures", "XstateSize": "xstate_size"}},
	{&UffdioAPI{}, SizeofUffdioAPI, "struct uffdio_api", map[string]string{"API": "api", "Features": "features", "Ioctls": "ioctls"}},
	{&UffdioRegister{}, SizeofUffdioRegister, "struct uffdio_register", map[string]string{
		"Start": "range.start", "Len": "range.len", "Mode": "mode", "Ioctls": "ioctls"}},
	{&Iovec{}, SizeofIovec, "struct iovec", map[string]string{"Base": "iov_base", "Len": "iov_len"}},
	{&Flock{}, SizeofFlock, "struct flock", map[string]string{
		"Type": "l_type", "Whence": "l_whence", "Start": "l_start", "Len": "l_len", "Pid": "l_pid"}},
	{&Capset{}, SizeofCapset, "struct { struct __user_cap_header_struct h; struct __user_cap_data_struct d[2]; }", map[string]string{
		"Version": "h.version", "Pid": "h.pid", "Data": "d"}},
}

func TestSizes(t *testing.T) {
	if got := len(EncodeOpenHow(unix.OpenHow{})); got != unix.SizeofOpenHow {
		t.Errorf("len(EncodeOpenHow) = %d; want %d", got, unix.SizeofOpenHow)
	}
	for _, l := range layouts {
		if got := binary.Size(l.v); got != l.size {
			t.Errorf("binary.Size(%T) = %d; want %d", l.v, got, l.size)
		}
		if got := len(l.v.Encode()); got != l.size {
			t.Errorf("len(%T.Encode()) = %d; want %d", l.v, got, l.size)
		}
	}
}

// fill sets every exported field of the struct v points to at random.
func fill(r *rand.Rand, v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch {
		case !v.Type().Field(i).IsExported():
		case f.Kind() == reflect.Struct:
			fill(r, f)
		case f.CanUint():
			f.SetUint(r.Uint64())
		case f.CanInt():
			f.SetInt(int64(r.Uint64()))
		}
	}
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, l := range layouts {
		for range 20 {
			in := reflect.New(reflect.TypeOf(l.v).Elem())
			fill(r, in.Elem())
			b := in.Interface().(codec).Encode()
			out := reflect.New(in.Type().Elem())
			out.Interface().(codec).Decode(append(b, 0xff)) // longer is fine
			if !reflect.DeepEqual(in.Interface(), out.Interface()) {
				t.Fatalf("%T: Decode(Encode(%+v)) = %+v", l.v, in.Elem(), out.Elem())
			}
			if again := out.Interface().(codec).Encode(); !bytes.Equal(again, b) {
				t.Fatalf("%T: encoding changed after a round trip: % x; want % x", l.v, again, b)
			}
		}
	}
}

// TestPadding checks that blank fields encode as zeros and are ignored
// when decoding.
func TestPadding(t *testing.T) {
	b := bytes.Repeat([]byte{0xff}, SizeofStackT)
	var s StackT
	s.Decode(b)
	if got := s.Encode(); !bytes.Equal(got[12:16], []byte{0, 0, 0, 0}) {
		t.Errorf("StackT padding encodes as % x; want zeros", got[12:16])
	}
}

func TestItimer(t *testing.T) {
	for _, c := range []struct{ interval, value, perSec int64 }{
		{0, 0, 1e6}, {1500000, 2500001, 1e6}, {3e9 + 7, 1, 1e9}, {999999999, 1e9, 1e9},
	} {
		it := MakeItimer(c.interval, c.value, c.perSec)
		var back Itimer
		back.Decode(it.Encode())
		if i, v := back.Join(c.perSec); i != c.interval || v != c.value {
			t.Errorf("MakeItimer(%d, %d, %g).Join = %d, %d", c.interval, c.value, float64(c.perSec), i, v)
		}
		if it.IntervalRest >= c.perSec || it.ValueRest >= c.perSec {
			t.Errorf("MakeItimer(%d, %d, %g) = %+v: the rest is a second or more", c.interval, c.value, float64(c.perSec), it)
		}
	}
}

func TestSockFilters(t *testing.T) {
	prog := []byte{0x06, 0, 1, 2, 0, 0, 0xc0, 0x7f, 0x15, 0, 3, 4, 5, 0, 0, 0, 9}
	got := SockFilters(prog)
	if len(got) != 2 || got[0].Code != 6 || got[0].Jt != 1 || got[0].Jf != 2 || got[0].K != 0x7fc00000 ||
		got[1].Code != 0x15 || got[1].K != 5 {
		t.Errorf("SockFilters(% x) = %+v", prog, got)
	}
}

// offsets returns the offset in the encoding of every field of the
// struct type t, nested ones as "Outer.Inner".
func offsets(t reflect.Type, base int, prefix string, out map[string]int) {
	off := base
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct {
			offsets(f.Type, off, prefix+f.Name+".", out)
		}
		if f.IsExported() {
			out[prefix+f.Name] = off
		}
		off += binary.Size(reflect.Zero(f.Type).Interface())
	}
}

// regs are the register word indices, by their <sys/reg.h> names.
var regs = map[string]int{"R15": R15, "R14": R14, "R13": R13, "R12": R12, "RBP": RBP, "RBX": RBX,
	"R11": R11, "R10": R10, "R9": R9, "R8": R8, "RAX": RAX, "RCX": RCX, "RDX": RDX, "RSI": RSI,
	"RDI": RDI, "ORIG_RAX": ORIG_RAX, "RIP": RIP, "CS": CS, "EFLAGS": EFLAGS, "RSP": RSP, "SS": SS,
	"FS_BASE": FS_BASE, "GS_BASE": GS_BASE, "DS": DS, "ES": ES, "FS": FS, "GS": GS}

// TestRegsAgainstC checks the register word indices against <sys/reg.h>
// and their count against struct user_regs_struct.
func TestRegsAgainstC(t *testing.T) {
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <sys/reg.h>\n#include <sys/user.h>\nint main(void) {\n")
	src.WriteString("\tprintf(\"NumUserRegs %zu\\n\", sizeof(struct user_regs_struct) / 8);\n")
	for name := range regs {
		fmt.Fprintf(&src, "\tprintf(\"%s %%d\\n\", %s);\n", name, name)
	}
	src.WriteString("\treturn 0;\n}\n")
	want := map[string]int64{"NumUserRegs": NumUserRegs}
	for name, i := range regs {
		want[name] = int64(i)
	}
	compareC(t, cValues(t, src.String()), want)
}

// TestConstantsAgainstC checks the constants against the kernel's
// headers.
func TestConstantsAgainstC(t *testing.T) {
	consts := map[string]int64{"SS_ONSTACK": SS_ONSTACK, "SS_DISABLE": SS_DISABLE,
		"SIGEV_THREAD_ID": SIGEV_THREAD_ID, "KCMP_FILE": KCMP_FILE, "KCMP_EPOLL_TFD": KCMP_EPOLL_TFD,
		"UC_FP_XSTATE": UC_FP_XSTATE, "UC_SIGCONTEXT_SS": UC_SIGCONTEXT_SS, "UC_STRICT_RESTORE_SS": UC_STRICT_RESTORE_SS,
		"FP_XSTATE_MAGIC1": FP_XSTATE_MAGIC1, "FP_XSTATE_MAGIC2": FP_XSTATE_MAGIC2, "FP_XSTATE_MAGIC2_SIZE": FP_XSTATE_MAGIC2_SIZE,
		"MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED":            MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED,
		"MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED":           MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
		"MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE": MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
		"MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ":      MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
		"SizeofSigset": SizeofSigset, "SizeofSiginfo": SizeofSiginfo,
		"Dirent64RecLenOffset": Dirent64RecLenOffset, "Dirent64NameOffset": Dirent64NameOffset,
		"UFFD_API": UFFD_API, "UFFDIO_REGISTER_MODE_WP": UFFDIO_REGISTER_MODE_WP,
		"UFFDIO_API": UFFDIO_API, "UFFDIO_REGISTER": UFFDIO_REGISTER,
	}
	// (MEMBARRIER_CMD_GET_REGISTRATIONS, of Linux 6.13, is left out: the
	// headers of many systems predate it.)
	var src strings.Builder
	src.WriteString(`#define _LARGEFILE64_SOURCE
#include <stdio.h>
#include <asm/signal.h>
#include <asm/siginfo.h>
#include <asm/sigcontext.h>
#include <asm/ucontext.h>
#include <linux/kcmp.h>
#include <linux/membarrier.h>
#include <linux/signal.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#define SizeofSigset sizeof(sigset_t)
#define SizeofSiginfo sizeof(siginfo_t)
#include <stddef.h>
#include <dirent.h> /* glibc's struct dirent64 is the kernel's linux_dirent64 */
#define Dirent64RecLenOffset offsetof(struct dirent64, d_reclen)
#define Dirent64NameOffset offsetof(struct dirent64, d_name)
int main(void) {
`)
	for name := range consts {
		fmt.Fprintf(&src, "\tprintf(\"%s %%lld\\n\", (long long)(%s));\n", name, name)
	}
	src.WriteString("\treturn 0;\n}\n")
	compareC(t, cValues(t, src.String()), consts)
}

// cValues runs a C program (runC) that prints lines "NAME NUMBER" and
// returns them.
func cValues(t *testing.T, src string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	for line := range strings.Lines(runC(t, src)) {
		var name string
		var v int64
		if _, err := fmt.Sscanf(line, "%s %d", &name, &v); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got[name] = v
	}
	return got
}

// compareC checks the values a C program printed against want's.
func compareC(t *testing.T, got, want map[string]int64) {
	t.Helper()
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s is %d in C (printed: %v); %d here", name, g, ok, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("C program printed %d values; want %d", len(got), len(want))
	}
}

// runC compiles and runs a C program with gcc and returns its output; it
// skips the test without gcc or the headers.
func runC(t *testing.T, src string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("no gcc")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "abi.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "abi")
	if out, err := exec.Command(gcc, "-o", bin, filepath.Join(dir, "abi.c")).CombinedOutput(); err != nil {
		if strings.Contains(string(out), "No such file") {
			t.Skipf("no headers: %s", out)
		}
		t.Fatalf("gcc: %v\n%s\n%s", err, out, src)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestAgainstC compiles a C program against the kernel's headers that
// prints the size and member offsets of every struct here, and compares.
func TestAgainstC(t *testing.T) {
	var src strings.Builder
	src.WriteString(`#include <stdio.h>
#include <stddef.h>
#include <asm/signal.h>
#include <asm/siginfo.h>
#include <asm/sigcontext.h>
#include <asm/ucontext.h>
#include <linux/sched.h>
#include <linux/prctl.h>
#include <linux/time_types.h>
#include <linux/eventpoll.h>
#include <linux/filter.h>
#include <linux/capability.h>
#include <linux/uio.h>
#include <linux/userfaultfd.h>
int main(void) {
`)
	for i, l := range layouts {
		fmt.Fprintf(&src, "\t{ typedef %s T; printf(\"%d size %%zu\\n\", sizeof(T));\n", l.ctype, i)
		for g, c := range l.fields {
			fmt.Fprintf(&src, "\t  printf(\"%d %s %%zu\\n\", offsetof(T, %s));\n", i, g, c)
		}
		src.WriteString("\t}\n")
	}
	src.WriteString("\treturn 0;\n}\n")
	out := runC(t, src.String())
	n := 0
	for line := range strings.Lines(out) {
		var i, got int
		var name string
		if _, err := fmt.Sscanf(line, "%d %s %d", &i, &name, &got); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		l := layouts[i]
		want := l.size
		if name != "size" {
			offs := map[string]int{}
			offsets(reflect.TypeOf(l.v).Elem(), 0, "", offs)
			want = offs[name]
		}
		if got != want {
			t.Errorf("%s: %s is %d in C; %d in %T", l.ctype, name, got, want, l.v)
		}
		n++
	}
	if want := len(layouts) + func() (k int) {
		for _, l := range layouts {
			k += len(l.fields)
		}
		return
	}(); n != want {
		t.Errorf("C program printed %d lines; want %d", n, want)
	}
}

// TestMsghdrAgainstC checks Msghdr against the C library's struct msghdr
// (the kernel's user_msghdr, which its headers do not export; the C
// library's headers do not mix with the kernel's of TestAgainstC).
func TestMsghdrAgainstC(t *testing.T) {
	fields := map[string]string{"Name": "msg_name", "Namelen": "msg_namelen", "Iov": "msg_iov",
		"Iovlen": "msg_iovlen", "Control": "msg_control", "Controllen": "msg_controllen", "Flags": "msg_flags"}
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include <stddef.h>\n#include <sys/socket.h>\nint main(void) {\n")
	src.WriteString("\tprintf(\"size %zu\\n\", sizeof(struct msghdr));\n")
	for g, c := range fields {
		fmt.Fprintf(&src, "\tprintf(\"%s %%zu\\n\", offsetof(struct msghdr, %s));\n", g, c)
	}
	src.WriteString("\treturn 0;\n}\n")
	offs := map[string]int{}
	offsets(reflect.TypeOf(Msghdr{}), 0, "", offs)
	want := map[string]int64{"size": SizeofMsghdr}
	for g := range fields {
		want[g] = int64(offs[g])
	}
	if got := len(Msghdr{}.Encode()); got != SizeofMsghdr {
		t.Errorf("len(Msghdr.Encode()) = %d; want %d", got, SizeofMsghdr)
	}
	compareC(t, cValues(t, src.String()), want)
}
