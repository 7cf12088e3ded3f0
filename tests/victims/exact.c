/*
 * exact: a victim with one mode per process or thread attribute that a
 * round trip must give back exactly, each checked from the program's own
 * point of view.
 *
 * Usage: exact MODE [ARGS...]
 *
 * Every mode prints "start 0 pid=P ..." and then, every 100 ms (strict:
 * once per line read), one report line "MODE N key=value... xok=1" with N
 * counting its lines and each *ok field saying whether a check held:
 *
 *	creds		sets its supplementary groups to 4242 4243 4244 and its
 *		oom_score_adj to 345 (as root). Prints "creds N
 *		groupsok=1 oomok=1", read back with getgroups(2) and
 *		/proc/self/oom_score_adj.
 *	madv		maps eight regions of 4 pages and marks each: dc
 *		(MADV_DONTFORK), wf (MADV_WIPEONFORK), hg (MADV_HUGEPAGE),
 *		nh (MADV_NOHUGEPAGE), mg (MADV_MERGEABLE), dd
 *		(MADV_DONTDUMP), lo (mlock), dp (MAP_DROPPABLE). The start
 *		line names each region's address (dc=ADDR...). Prints
 *		"madv N dcok=1 wfok=1 ... dataok=1": the region's VmFlags in
 *		/proc/self/smaps still hold its flag, and its bytes (but
 *		the droppable one's) are what it wrote.
 *	thcreds		a second thread sets its own groups (777), gids
 *		(1001 1002 1003) and uids (2001 2002 2003) with the raw
 *		system calls, which change one thread only. The start line
 *		gives its tid=T. Prints "thcreds N mainok=1 threadok=1":
 *		the main thread is still root, the other thread has its
 *		own credentials (getresuid, getresgid, getgroups in each).
 *	sched		five threads: the main one SCHED_OTHER nice 3, then
 *		SCHED_BATCH nice 7, SCHED_IDLE, SCHED_FIFO priority 5 and
 *		SCHED_RR priority 3 (SCHED_FLAG_RESET_ON_FORK on the last).
 *		It also sets PR_SET_THP_DISABLE and registers for
 *		MEMBARRIER_CMD_PRIVATE_EXPEDITED. Prints "sched N
 *		schedok=1 thpok=1 mbok=1": every thread's sched_getattr(2)
 *		as set, PR_GET_THP_DISABLE 1, and a private expedited
 *		membarrier succeeds (it fails with EPERM unregistered).
 *	seccomp		sets no_new_privs and a filter (SECCOMP_FILTER_FLAG_LOG)
 *		making getpid fail with EPERM; then a second thread adds a
 *		filter of its own making getppid fail with EACCES. Prints
 *		"seccomp N mainok=1 threadok=1": in the main thread getpid
 *		fails and getppid works, in the other both fail as set.
 *	tsync		sets no_new_privs and the getpid filter of seccomp, then
 *		starts a second thread, which shares it. Each line it adds
 *		a filter that allows everything, with
 *		SECCOMP_FILTER_FLAG_TSYNC, which works only while the
 *		threads share their filters. Prints "tsync N mainok=1
 *		threadok=1 tsyncok=1".
 *	strict		enters seccomp strict mode: from then on it can only
 *		read, write and exit. For each line read on fd 0 it prints
 *		"strict N len=L", L the line's length.
 *	chroot DIR	chroots into DIR (which holds a file "marker") and
 *		changes to its /sub. Prints "chroot N markerok=1 cwdok=1":
 *		/marker reads "here" and getcwd says /sub.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "say.h"

/* struct sched_attr of sched_setattr(2), which glibc's headers lack. */
struct sched_attr {
	uint32_t size, sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif

static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "exact: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void nap(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* creds */

static int readOom(void)
{
	char buf[32] = {0};
	int fd = open("/proc/self/oom_score_adj", O_RDONLY);
	if (fd < 0)
		return -10000;
	int n = read(fd, buf, sizeof buf - 1);
	close(fd);
	return n > 0 ? atoi(buf) : -10000;
}

static void __attribute__((noreturn)) creds(void)
{
	gid_t want[] = {4242, 4243, 4244};
	if (setgroups(3, want) < 0)
		die("setgroups");
	int fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd < 0 || write(fd, "345", 3) != 3)
		die("oom_score_adj");
	close(fd);
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(100);
		gid_t g[16];
		int k = getgroups(16, g);
		int groupsok = k == 3 && g[0] == 4242 && g[1] == 4243 && g[2] == 4244;
		int oom = readOom();
		say("creds %ld oom=%d groupsok=%d oomok=%d\n", n, oom, groupsok, oom == 345);
	}
}

/* madv */

#define NREG 8
static const char *regName[NREG] = {"dc", "wf", "hg", "nh", "mg", "dd", "lo", "dp"};
static char *reg[NREG];

/* hasFlag tells whether the smaps entry starting at addr has VmFlags flag. */
static int hasFlag(const char *smaps, char *addr, const char *flag)
{
	char key[32];
	snprintf(key, sizeof key, "\n%lx-", (unsigned long)addr);
	const char *p = strstr(smaps, key);
	if (!p)
		return 0;
	const char *v = strstr(p, "VmFlags:");
	if (!v)
		return 0;
	const char *e = strchr(v, '\n');
	for (const char *q = v + 8; q + 2 <= e; q++)
		if (q[-1] == ' ' && q[0] == flag[0] && q[1] == flag[1] && (q[2] == ' ' || q[2] == '\n'))
			return 1;
	return 0;
}

static void __attribute__((noreturn)) madv(void)
{
	size_t sz = 4 * 4096;
	static const int adv[NREG] = {MADV_DONTFORK, MADV_WIPEONFORK, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
				      MADV_MERGEABLE, MADV_DONTDUMP, -1, -1};
	/* One reservation, so that the regions lie apart in order. */
	char *base = mmap(NULL, sz * (2 * NREG + 1), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED)
		die("mmap");
	for (int i = 0; i < NREG; i++) {
		int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
		if (i == 7)
			flags = MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED;
		reg[i] = mmap(base + sz * (2 * i + 1), sz, PROT_READ | PROT_WRITE, flags, -1, 0);
		if (reg[i] == MAP_FAILED)
			die(regName[i]);
		memset(reg[i], 'a' + i, sz);
		if (adv[i] >= 0 && madvise(reg[i], sz, adv[i]) < 0)
			die(regName[i]);
		if (i == 6 && mlock(reg[i], sz) < 0)
			die("mlock");
	}
	say("start 0 pid=%d dc=%p wf=%p hg=%p nh=%p mg=%p dd=%p lo=%p dp=%p\n", (int)getpid(),
	    reg[0], reg[1], reg[2], reg[3], reg[4], reg[5], reg[6], reg[7]);
	static char smaps[1 << 20];
	for (long n = 1;; n++) {
		nap(100);
		int fd = open("/proc/self/smaps", O_RDONLY);
		if (fd < 0)
			die("smaps");
		size_t len = 1;
		smaps[0] = '\n';
		ssize_t r;
		while (len < sizeof smaps - 1 && (r = read(fd, smaps + len, sizeof smaps - 1 - len)) > 0)
			len += r;
		smaps[len] = 0;
		close(fd);
		char line[400];
		int off = snprintf(line, sizeof line, "madv %ld", n);
		int dataok = 1;
		for (int i = 0; i < NREG; i++) {
			off += snprintf(line + off, sizeof line - off, " %sok=%d", regName[i], hasFlag(smaps, reg[i], regName[i]));
			for (size_t k = 0; i != 7 && k < sz; k += 512)
				dataok &= reg[i][k] == 'a' + i;
		}
		say("%s dataok=%d\n", line, dataok);
	}
}

/* thcreds */

static atomic_int threadok;
static atomic_int threadTid;

static int credsAre(uid_t u0, uid_t u1, uid_t u2, gid_t g0, gid_t g1, gid_t g2, int ng, gid_t g)
{
	uid_t r, e, s;
	gid_t gr, ge, gs, gl[8];
	if (getresuid(&r, &e, &s) < 0 || getresgid(&gr, &ge, &gs) < 0)
		return 0;
	int k = getgroups(8, gl);
	return r == u0 && e == u1 && s == u2 && gr == g0 && ge == g1 && gs == g2 && k == ng && (ng == 0 || gl[0] == g);
}

static void *credThread(void *arg)
{
	(void)arg;
	gid_t g = 777;
	if (syscall(SYS_setgroups, 1, &g) < 0 || syscall(SYS_setresgid, 1001, 1002, 1003) < 0 ||
	    syscall(SYS_setresuid, 2001, 2002, 2003) < 0)
		die("thread credentials");
	atomic_store(&threadTid, (int)gettid());
	for (;;) {
		atomic_store(&threadok, credsAre(2001, 2002, 2003, 1001, 1002, 1003, 1, 777));
		nap(20);
	}
	return NULL;
}

static void __attribute__((noreturn)) thcreds(void)
{
	gid_t none = 0;
	if (setgroups(0, &none) < 0)
		die("setgroups");
	pthread_t th;
	if (pthread_create(&th, NULL, credThread, NULL) != 0)
		die("pthread_create");
	while (atomic_load(&threadTid) == 0)
		nap(5);
	nap(30);
	say("start 0 pid=%d tid=%d\n", (int)getpid(), atomic_load(&threadTid));
	for (long n = 1;; n++) {
		nap(100);
		say("thcreds %ld mainok=%d threadok=%d\n", n, credsAre(0, 0, 0, 0, 0, 0, 0, 0), atomic_load(&threadok));
	}
}

/* sched */

struct want {
	int policy, nice, prio, flags;
};
static const struct want wants[5] = {
	{SCHED_OTHER, 3, 0, 0},
	{SCHED_BATCH, 7, 0, 0},
	{SCHED_IDLE, 0, 0, 0},
	{SCHED_FIFO, 0, 5, 0},
	{SCHED_RR, 0, 3, SCHED_FLAG_RESET_ON_FORK},
};
static atomic_int schedok[5];
static atomic_int schedReady;

static int schedIs(const struct want *w)
{
	struct sched_attr a = {0};
	if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) < 0)
		return 0;
	int nice = a.sched_policy == SCHED_OTHER || a.sched_policy == SCHED_BATCH ? a.sched_nice : 0;
	return (int)a.sched_policy == w->policy && nice == w->nice && (int)a.sched_priority == w->prio &&
	       (int)(a.sched_flags & SCHED_FLAG_RESET_ON_FORK) == w->flags;
}

static void schedSet(const struct want *w)
{
	struct sched_attr a = {.size = sizeof a, .sched_policy = w->policy, .sched_nice = w->nice,
			       .sched_priority = w->prio, .sched_flags = w->flags};
	if (syscall(SYS_sched_setattr, 0, &a, 0) < 0)
		die("sched_setattr");
}

static void *schedThread(void *arg)
{
	int i = (int)(intptr_t)arg;
	schedSet(&wants[i]);
	atomic_fetch_add(&schedReady, 1);
	for (;;) {
		atomic_store(&schedok[i], schedIs(&wants[i]));
		nap(20);
	}
	return NULL;
}

static void __attribute__((noreturn)) schedm(void)
{
	if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0)
		die("PR_SET_THP_DISABLE");
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) < 0)
		die("membarrier");
	schedSet(&wants[0]);
	for (int i = 1; i < 5; i++) {
		pthread_t th;
		if (pthread_create(&th, NULL, schedThread, (void *)(intptr_t)i) != 0)
			die("pthread_create");
	}
	while (atomic_load(&schedReady) < 4)
		nap(5);
	nap(30);
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(100);
		int ok = schedIs(&wants[0]);
		for (int i = 1; i < 5; i++)
			ok &= atomic_load(&schedok[i]);
		int thp = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
		int mb = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
		say("sched %ld thp=%d schedok=%d thpok=%d mbok=%d\n", n, thp, ok, thp == 1, mb);
	}
}

/* seccomp */

static void filterErrno(int nr, int err)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof f / sizeof f[0], f};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_LOG, &prog) < 0)
		die("seccomp");
}

static int fails(long nr, int err)
{
	errno = 0;
	return syscall(nr) < 0 && errno == err;
}

static atomic_int secReady, secThreadok;

static void *secThread(void *arg)
{
	(void)arg;
	filterErrno(SYS_getppid, EACCES);
	atomic_store(&secReady, 1);
	for (;;) {
		atomic_store(&secThreadok, fails(SYS_getpid, EPERM) && fails(SYS_getppid, EACCES));
		nap(20);
	}
	return NULL;
}

static void __attribute__((noreturn)) seccompm(void)
{
	int pid = getpid();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("PR_SET_NO_NEW_PRIVS");
	filterErrno(SYS_getpid, EPERM);
	pthread_t th;
	if (pthread_create(&th, NULL, secThread, NULL) != 0)
		die("pthread_create");
	while (!atomic_load(&secReady))
		nap(5);
	nap(30);
	say("start 0 pid=%d\n", pid);
	for (long n = 1;; n++) {
		nap(100);
		int mainok = fails(SYS_getpid, EPERM) && syscall(SYS_getppid) > 0;
		say("seccomp %ld mainok=%d threadok=%d\n", n, mainok, atomic_load(&secThreadok));
	}
}

static void *tsyncThread(void *arg)
{
	(void)arg;
	for (;;) {
		atomic_store(&secThreadok, fails(SYS_getpid, EPERM));
		atomic_store(&secReady, 1);
		nap(20);
	}
	return NULL;
}

static void __attribute__((noreturn)) tsync(void)
{
	int pid = getpid();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("PR_SET_NO_NEW_PRIVS");
	filterErrno(SYS_getpid, EPERM);
	pthread_t th;
	if (pthread_create(&th, NULL, tsyncThread, NULL) != 0)
		die("pthread_create");
	while (!atomic_load(&secReady)) /* its first check done, on a loaded machine too */
		nap(5);
	nap(50);
	say("start 0 pid=%d\n", pid);
	struct sock_filter allow[] = {BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
	struct sock_fprog prog = {1, allow};
	for (long n = 1;; n++) {
		nap(100);
		int mainok = fails(SYS_getpid, EPERM);
		int tsyncok = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) == 0;
		say("tsync %ld mainok=%d threadok=%d tsyncok=%d\n", n, mainok, atomic_load(&secThreadok), tsyncok);
	}
}

/* strict */

static void __attribute__((noreturn)) strict(void)
{
	say("start 0 pid=%d\n", (int)getpid());
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0) < 0)
		die("PR_SET_SECCOMP");
	char buf[256];
	long n = 0, len = 0;
	for (;;) {
		ssize_t r = read(0, buf, sizeof buf);
		if (r <= 0)
			syscall(SYS_exit, 0);
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != '\n') {
				len++;
				continue;
			}
			say("strict %ld len=%ld\n", ++n, len);
			len = 0;
		}
	}
}

/* chroot */

static void __attribute__((noreturn)) chrootm(const char *dir)
{
	if (chroot(dir) < 0 || chdir("/sub") < 0)
		die("chroot");
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(100);
		char buf[16] = {0}, cwd[64] = {0};
		int fd = open("/marker", O_RDONLY);
		int markerok = fd >= 0 && read(fd, buf, sizeof buf - 1) == 4 && strcmp(buf, "here") == 0;
		if (fd >= 0)
			close(fd);
		int cwdok = getcwd(cwd, sizeof cwd) && strcmp(cwd, "/sub") == 0;
		say("chroot %ld markerok=%d cwdok=%d\n", n, markerok, cwdok);
	}
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "creds") == 0)
		creds();
	if (argc == 2 && strcmp(argv[1], "madv") == 0)
		madv();
	if (argc == 2 && strcmp(argv[1], "thcreds") == 0)
		thcreds();
	if (argc == 2 && strcmp(argv[1], "sched") == 0)
		schedm();
	if (argc == 2 && strcmp(argv[1], "seccomp") == 0)
		seccompm();
	if (argc == 2 && strcmp(argv[1], "tsync") == 0)
		tsync();
	if (argc == 2 && strcmp(argv[1], "strict") == 0)
		strict();
	if (argc == 3 && strcmp(argv[1], "chroot") == 0)
		chrootm(argv[2]);
	fprintf(stderr, "usage: exact creds | madv | thcreds | sched | seccomp | tsync | strict | chroot DIR\n");
	return 2;
}
