/*
 * openfiles: a victim whose open files must come back exactly. It sets up
 * the state of MODE, prints "ready", then, for each line it reads on
 * stdin, prints one line
 *
 *	view MODE key=value...
 *
 * that says how the state looks from inside: a round trip must leave
 * the line as it was (values that name the process itself, its PID,
 * are printed as checks, *ok=1).
 *
 * Usage: openfiles MODE DIR
 *
 *	opath	DIR/f (holding "hello") and the symbolic link DIR/l -> f
 *		open O_PATH (fd 3), O_PATH|O_NOFOLLOW (fd 4), and DIR
 *		O_PATH|O_DIRECTORY (fd 5): their flags, what fstat says of
 *		them, the link's target read through fd 4, and "hello"
 *		read through openat(fd 5, "f").
 *	mapaccess	DIR/m (two pages) mapped MAP_SHARED PROT_READ from
 *		an O_RDWR fd (page 0) and from an O_RDONLY fd (page 1),
 *		both fds closed: mprotect(PROT_READ|PROT_WRITE) must work
 *		on the first (w1=0) and fail with EACCES on the second
 *		(w2=13).
 *	memfd	a memfd "exact-exec" holding a copy of this program, mode
 *		0711, that a child runs with execveat (exec=42 is its exit
 *		status); a memfd "exact-sealed" of 2 pages, mode 0640,
 *		mapped shared and private, the private copy written, sealed
 *		SHRINK|GROW|SEAL.
 *	sparse	DIR/sparse: 4 KiB of data at 0, 8 KiB of written zeros at
 *		64 KiB, 4 KiB of data past a 1 GiB hole, size 1 GiB + 1
 *		MiB, mode 0640, owner 1234:5678, atime and mtime set,
 *		opened O_NOATIME and unlinked; DIR/nul, a node of /dev/null
 *		(1:3) opened and unlinked. The view walks SEEK_DATA and
 *		SEEK_HOLE.
 *	deldir	works in DIR/gone (mode 0750), holds it open as a fd and
 *		a file in it, "file", unlinked; then removes DIR/gone.
 *	procself	/proc/self/status, /proc/self/maps and /proc/PID/stat
 *		open: each read through its fd must be this process's.
 *
 * "openfiles exit N" exits with status N (what memfd's child runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "say.h"

static void die(const char *what)
{
	say("fail %s: %s\n", what, strerror(errno));
	exit(2);
}

static char out[4096];
static size_t outn;

static void add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(out + outn, sizeof out - outn, fmt, ap);
	va_end(ap);
	if (n > 0 && outn + n < sizeof out)
		outn += n;
}

static void linkof(const char *key, int fd)
{
	char p[64], t[512];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, t, sizeof t - 1);
	t[n < 0 ? 0 : n] = 0;
	for (char *c = t; *c; c++)
		if (*c == ' ')
			*c = '_';
	add(" %s=%s", key, t);
}

static void statof(const char *key, int fd)
{
	struct stat st;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) < 0) {
		add(" %s=err%d", key, errno);
		return;
	}
	add(" %s=%o:%d:%d:%lld:%d", key, st.st_mode, st.st_uid, st.st_gid, (long long)st.st_size, (int)st.st_nlink);
}

static void flagsof(const char *key, int fd)
{
	add(" %s=%o", key, fcntl(fd, F_GETFL) & ~O_LARGEFILE);
}

static int at(int fd, int want)
{
	if (fd == want)
		return fd;
	if (dup2(fd, want) < 0)
		die("dup2");
	close(fd);
	return want;
}

static char *dir;

static char *in(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 512, "%s/%s", dir, name);
	return b;
}

/* opath */
static void opath_setup(void)
{
	int f = open(in("f"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (f < 0 || write(f, "hello", 5) != 5)
		die("f");
	close(f);
	if (symlink("f", in("l")) < 0)
		die("symlink");
	if (at(open(in("f"), O_PATH), 3) < 0 || at(open(in("l"), O_PATH | O_NOFOLLOW), 4) < 0 ||
	    at(open(dir, O_PATH | O_DIRECTORY), 5) < 0)
		die("open");
}

static void opath_view(void)
{
	for (int fd = 3; fd <= 5; fd++) {
		char k[8];
		snprintf(k, sizeof k, "fl%d", fd);
		flagsof(k, fd);
		snprintf(k, sizeof k, "st%d", fd);
		statof(k, fd);
		snprintf(k, sizeof k, "fd%d", fd);
		linkof(k, fd);
	}
	char t[64] = "";
	ssize_t n = readlinkat(4, "", t, sizeof t - 1);
	add(" target=%s", n > 0 ? (t[n] = 0, t) : "none");
	char b[16] = "";
	int f = openat(5, "f", O_RDONLY);
	n = f < 0 ? -1 : read(f, b, sizeof b - 1);
	add(" read=%s", n > 0 ? (b[n] = 0, b) : "none");
	if (f >= 0)
		close(f);
	/* An O_PATH fd reads nothing. */
	add(" readpath=%d", read(3, b, 1) < 0 ? errno : 0);
}

/* mapaccess */
static char *m1, *m2;

static void mapaccess_setup(void)
{
	int f = open(in("m"), O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (f < 0 || ftruncate(f, 8192) < 0)
		die("m");
	m1 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, f, 0);
	close(f);
	f = open(in("m"), O_RDONLY);
	m2 = mmap(NULL, 4096, PROT_READ, MAP_SHARED, f, 4096);
	close(f);
	if (m1 == MAP_FAILED || m2 == MAP_FAILED)
		die("mmap");
}

static int writable(char *m)
{
	if (mprotect(m, 4096, PROT_READ | PROT_WRITE) < 0)
		return errno;
	m[0] = m[0] + 1;
	mprotect(m, 4096, PROT_READ);
	return 0;
}

static void mapaccess_view(void)
{
	add(" w1=%d w2=%d", writable(m1), writable(m2));
}

/* memfd */
static int mx, ms;
static char *mshared, *mpriv;
static int counter;

static void memfd_setup(void)
{
	mx = memfd_create("exact-exec", MFD_CLOEXEC);
	int self = open("/proc/self/exe", O_RDONLY);
	if (mx < 0 || self < 0)
		die("memfd");
	char buf[65536];
	ssize_t n;
	while ((n = read(self, buf, sizeof buf)) > 0)
		if (write(mx, buf, n) != n)
			die("copy");
	close(self);
	if (fchmod(mx, 0711) < 0)
		die("fchmod");
	mx = at(mx, 3);
	ms = at(memfd_create("exact-sealed", MFD_ALLOW_SEALING), 4);
	if (ms < 0 || ftruncate(ms, 8192) < 0 || pwrite(ms, "file", 4, 0) != 4)
		die("sealed");
	mshared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, ms, 0);
	mpriv = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, ms, 0);
	if (mshared == MAP_FAILED || mpriv == MAP_FAILED)
		die("mmap");
	mpriv[0] = 'P';
	if (fchmod(ms, 0640) < 0 || fcntl(ms, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		die("seal");
}

static void memfd_view(void)
{
	pid_t c = fork();
	if (c == 0) {
		char *argv[] = {"openfiles", "exit", "42", NULL};
		char *envp[] = {NULL};
		syscall(SYS_execveat, mx, "", argv, envp, AT_EMPTY_PATH);
		_exit(100 + errno);
	}
	int ws = 0;
	waitpid(c, &ws, 0);
	add(" exec=%d", WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
	statof("stx", mx);
	statof("sts", ms);
	linkof("fdx", mx);
	linkof("fds", ms);
	flagsof("flx", mx);
	flagsof("fls", ms);
	add(" seals=%x", fcntl(ms, F_GET_SEALS));
	add(" grow=%d", ftruncate(ms, 16384) < 0 ? errno : 0);
	char b[4] = "";
	pread(ms, b, 1, 0);
	add(" file=%c priv=%c", b[0], mpriv[0]);
	/* A store through the shared mapping is seen through the fd. */
	counter++;
	mshared[100] = 'a' + counter % 26;
	pread(ms, b, 1, 100);
	add(" sharedok=%d", b[0] == mshared[100]);
}

/* sparse */
static int sp, nul;

static void sparse_setup(void)
{
	sp = open(in("sparse"), O_RDWR | O_CREAT | O_TRUNC | O_NOATIME, 0600);
	if (sp < 0)
		die("sparse");
	char data[8192];
	memset(data, 'd', sizeof data);
	off_t far = (1LL << 30) + (64 << 10);
	if (pwrite(sp, data, 4096, 0) != 4096 || pwrite(sp, data, 4096, far) != 4096)
		die("write");
	memset(data, 0, sizeof data);
	if (pwrite(sp, data, 8192, 64 << 10) != 8192 || ftruncate(sp, (1LL << 30) + (1 << 20)) < 0)
		die("zeros");
	if (fsync(sp) < 0 || fchmod(sp, 0640) < 0 || fchown(sp, 1234, 5678) < 0)
		die("attrs");
	struct timespec ts[2] = {{1100000000, 123456789}, {1000000000, 987654321}};
	if (futimens(sp, ts) < 0 || unlink(in("sparse")) < 0)
		die("times");
	sp = at(sp, 3);
	if (mknod(in("nul"), S_IFCHR | 0620, makedev(1, 3)) < 0)
		die("mknod");
	nul = at(open(in("nul"), O_RDWR), 4);
	if (nul < 0 || unlink(in("nul")) < 0)
		die("nul");
}

static void sparse_view(void)
{
	struct stat st;
	fstat(sp, &st);
	add(" mode=%o uid=%d gid=%d size=%lld atime=%lld.%09ld mtime=%lld.%09ld", st.st_mode, st.st_uid, st.st_gid,
	    (long long)st.st_size, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec,
	    st.st_mtim.tv_nsec);
	add(" extents=");
	for (off_t o = 0;;) {
		off_t d = lseek(sp, o, SEEK_DATA);
		if (d < 0)
			break;
		off_t h = lseek(sp, d, SEEK_HOLE);
		add("%lld-%lld,", (long long)d, (long long)h);
		o = h;
	}
	char b[2] = "";
	pread(sp, b, 1, (1LL << 30) + (64 << 10));
	add(" far=%c", b[0]);
	add(" blocks=%s", st.st_blocks < 1024 ? "few" : "many");
	fstat(nul, &st);
	add(" nul=%d:%d:%o", major(st.st_rdev), minor(st.st_rdev), st.st_mode);
	add(" nulread=%zd", read(nul, b, 1));
	linkof("fd3", sp);
	linkof("fd4", nul);
}

/* deldir */
static int dd, df;

static void deldir_setup(void)
{
	if (mkdir(in("gone"), 0750) < 0 || chmod(in("gone"), 0750) < 0 || chdir(in("gone")) < 0)
		die("gone");
	dd = at(open(".", O_RDONLY | O_DIRECTORY), 3);
	df = at(open("file", O_RDWR | O_CREAT, 0644), 4);
	if (dd < 0 || df < 0 || write(df, "in gone", 7) != 7 || unlink("file") < 0 || rmdir(in("gone")) < 0)
		die("deldir");
}

static void deldir_view(void)
{
	char b[512];
	ssize_t n = readlink("/proc/self/cwd", b, sizeof b - 1);
	b[n < 0 ? 0 : n] = 0;
	for (char *c = b; *c; c++)
		if (*c == ' ')
			*c = '_';
	add(" cwd=%s", b);
	add(" getcwd=%d", getcwd(b, sizeof b) ? 0 : errno);
	struct stat a, c;
	stat(".", &a);
	fstat(dd, &c);
	add(" dot=%o:%d same=%d", a.st_mode, (int)a.st_nlink, a.st_ino == c.st_ino && a.st_dev == c.st_dev);
	linkof("fd3", dd);
	linkof("fd4", df);
	statof("st4", df);
	n = pread(df, b, 16, 0);
	b[n < 0 ? 0 : n] = 0;
	add(" data=%s", n > 0 ? b : "none");
	add(" create=%d", open("new", O_RDWR | O_CREAT, 0644) < 0 ? errno : 0);
}

/* procself */
static int ps, pm, pt;

static void procself_setup(void)
{
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/stat", getpid());
	ps = at(open("/proc/self/status", O_RDONLY), 3);
	pm = at(open("/proc/self/maps", O_RDONLY), 4);
	pt = at(open(p, O_RDONLY), 5);
	if (ps < 0 || pm < 0 || pt < 0)
		die("open");
}

static char big[1 << 16];

static void procself_view(void)
{
	char want[64];
	ssize_t n = pread(ps, big, sizeof big - 1, 0);
	big[n < 0 ? 0 : n] = 0;
	snprintf(want, sizeof want, "\nPid:\t%d\n", getpid());
	add(" statusok=%d", strstr(big, want) != NULL);
	n = pread(pm, big, sizeof big - 1, 0);
	big[n < 0 ? 0 : n] = 0;
	/* This process's maps: the line of big itself. */
	snprintf(want, sizeof want, "%lx-", (unsigned long)big & ~0xfffUL);
	int found = 0;
	for (char *l = big; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l) {
		unsigned long s, e;
		if (sscanf(l, "%lx-%lx", &s, &e) == 2 && s <= (unsigned long)big && (unsigned long)big < e)
			found = 1;
	}
	add(" mapsok=%d", found);
	n = pread(pt, big, sizeof big - 1, 0);
	big[n < 0 ? 0 : n] = 0;
	add(" statok=%d", atoi(big) == getpid());
	char l[64];
	snprintf(want, sizeof want, "/proc/%d/stat", getpid());
	snprintf(l, sizeof l, "/proc/self/fd/%d", pt);
	n = readlink(l, big, sizeof big - 1);
	big[n < 0 ? 0 : n] = 0;
	add(" linkok=%d", strcmp(big, want) == 0);
	flagsof("fl3", ps);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "exit") == 0)
		return atoi(argv[2]);
	if (argc != 3) {
		fprintf(stderr, "usage: openfiles MODE DIR\n");
		return 2;
	}
	const char *mode = argv[1];
	dir = argv[2];
	struct {
		const char *name;
		void (*setup)(void), (*view)(void);
	} modes[] = {
	    {"opath", opath_setup, opath_view},
	    {"mapaccess", mapaccess_setup, mapaccess_view},
	    {"memfd", memfd_setup, memfd_view},
	    {"sparse", sparse_setup, sparse_view},
	    {"deldir", deldir_setup, deldir_view},
	    {"procself", procself_setup, procself_view},
	};
	int m = -1;
	for (int i = 0; i < (int)(sizeof modes / sizeof modes[0]); i++)
		if (strcmp(modes[i].name, mode) == 0)
			m = i;
	if (m < 0) {
		fprintf(stderr, "openfiles: no mode %s\n", mode);
		return 2;
	}
	modes[m].setup();
	say("ready\n");
	char line[256];
	for (;;) {
		ssize_t n = read(0, line, sizeof line);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		outn = 0;
		out[0] = 0;
		modes[m].view();
		say("view %s%s\n", mode, out);
	}
}
