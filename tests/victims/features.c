/*
 * features: a victim with one mode per process feature a round trip must
 * keep, each checking it from the program's own point of view.
 *
 * Usage: features MODE [ARGS...]
 *
 * Every mode prints "start 0 pid=P" and then, every PERIOD, one report line
 *
 *	MODE N key=value... xok=1
 *
 * with N counting its lines and each *ok field saying whether a check held.
 * The modes:
 *
 *	files DATA LOG	DATA holds bytes whose value at offset k is k%251; it
 *		is read 8 bytes a line from offset 1000. LOG is opened
 *		O_APPEND and "N\n" appended each line. Prints
 *		"files N off=O size=S readok=1 offok=1 logok=1": O the
 *		offset of DATA (1000+8N), S the size of LOG, which must be
 *		the bytes this process appended (logok).
 *	deleted PATH	creates PATH with 64 KiB of pattern k*7%256, unlinks
 *		it and reads it 8 bytes a line from offset 4096, wrapping
 *		at the end. Prints "deleted N off=O nlink=L readok=1 offok=1".
 *	shm		maps 1 MiB MAP_SHARED|MAP_ANONYMOUS and a 1 MiB memfd
 *		(named "feat", kept open as fd 5) MAP_SHARED, both filled
 *		with patterns. Each line it stores N in the last word of the
 *		memfd mapping and reads it back through fd 5 (sameok).
 *		Prints "shm N shm=ADDR memfd=ADDR shmok=1 memfdok=1 fdok=1
 *		sameok=1".
 *	privmap FILE	maps FILE (16 pages, each page's words p*1000+i)
 *		MAP_PRIVATE read-write and writes pages 2, 5 and 6
 *		(words 0xdead0000+p). Prints "privmap N p3=X p5=X privok=1",
 *		X the first word of pages 3 and 5 in hex: page 3 is the
 *		file's, so a write to the file shows there; page 5 is the
 *		process's own copy. privok checks the other words of every page.
 *	timer		installs a 64 KiB sigaltstack and a SIGALRM handler with
 *		SA_ONSTACK; setitimer(ITIMER_REAL) fires every 50 ms.
 *		Prints every 100 ms "timer N ticks=T altok=1 ssok=1", altok
 *		saying every handler run had its frame on the altstack and
 *		ssok that sigaltstack(2) still reports it.
 *	dup DATA	opens DATA (the pattern of files) at offset 1000 and
 *		dup(2)s it to fd 7: each line reads 8 bytes through one fd,
 *		then 8 through the other, alternating. Prints "dup N off=O
 *		readok=1 sharedok=1", sharedok saying both fds report the
 *		same offset, 1000+16N.
 *	attrs DIR NAME	sets RLIMIT_NOFILE's soft limit to 100, umask 027,
 *		chdir DIR, nice 5 and names itself NAME with PR_SET_NAME.
 *		Prints every 100 ms "attrs N nofile=100 umask=027 nice=5
 *		limok=1 umaskok=1 niceok=1 cwdok=1 commok=1", checking
 *		each through the system calls that read it.
 *	tty		fd 0 is a terminal: opens it again as fd 3, turns its
 *		ICANON and ECHO off, VMIN and VTIME to 0, and counts
 *		SIGWINCHs. Every 50 ms it reads what was typed through
 *		fd 3 and prints "tty N icanon=I echo=E winch=W keys=K
 *		sameok=1", I and E as tcgetattr(3) says now, W the
 *		SIGWINCHs seen, K the bytes read in all, sameok saying
 *		that fds 0 and 3 are one terminal.
 *	ptimer		four POSIX timers: A (CLOCK_MONOTONIC, signal SIGRTMIN+1
 *		with value 4242, every 20 ms), B (CLOCK_REALTIME, once,
 *		in an hour), C (CLOCK_MONOTONIC, SIGRTMIN+2 to a second
 *		thread only, every 30 ms) and D (SIGEV_THREAD: glibc runs a
 *		function in a thread of its own, every 40 ms). Prints every
 *		100 ms "ptimer N a=A c=C d=D aok=1 bok=1 cok=1 idok=1": the
 *		counts of A, C and D; aok that every A signal carried 4242;
 *		bok that B is still armed, due within the hour, no interval;
 *		cok that every C signal ran on the second thread; idok that
 *		timer_gettime knows all four timer ids.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <termios.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "say.h"


static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "features: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* nap sleeps ms milliseconds whatever signals come. */
static void nap(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static ssize_t fullread(int fd, void *buf, size_t n)
{
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static void __attribute__((noreturn)) files(const char *data, const char *log)
{
	int dfd = open(data, O_RDONLY);
	int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (dfd < 0 || lfd < 0)
		die("open");
	if (lseek(dfd, 1000, SEEK_SET) != 1000)
		die("lseek");
	struct stat st;
	if (fstat(lfd, &st) < 0)
		die("fstat");
	long long written = st.st_size;
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(20);
		unsigned char b[8];
		off_t at = lseek(dfd, 0, SEEK_CUR);
		int readok = fullread(dfd, b, 8) == 8;
		for (int i = 0; i < 8 && readok; i++)
			readok = b[i] == (unsigned char)((at + i) % 251);
		off_t off = lseek(dfd, 0, SEEK_CUR);
		char line[32];
		int len = snprintf(line, sizeof line, "%ld\n", n);
		if (write(lfd, line, len) == len)
			written += len;
		if (fstat(lfd, &st) < 0)
			st.st_size = -1;
		say("files %ld off=%lld size=%lld readok=%d offok=%d logok=%d\n", n,
		    (long long)off, (long long)st.st_size, readok, off == 1000 + 8 * n,
		    st.st_size == written);
	}
}

#define DELSIZE (64 << 10)

static void __attribute__((noreturn)) deleted(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die("open");
	static unsigned char buf[DELSIZE];
	for (int i = 0; i < DELSIZE; i++)
		buf[i] = (unsigned char)(i * 7);
	if (write(fd, buf, DELSIZE) != DELSIZE)
		die("write");
	if (unlink(path) < 0)
		die("unlink");
	if (lseek(fd, 4096, SEEK_SET) != 4096)
		die("lseek");
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(20);
		off_t at = lseek(fd, 0, SEEK_CUR);
		if (at >= DELSIZE)
			at = lseek(fd, 0, SEEK_SET);
		unsigned char b[8];
		int readok = fullread(fd, b, 8) == 8;
		for (int i = 0; i < 8 && readok; i++)
			readok = b[i] == (unsigned char)((at + i) * 7);
		off_t off = lseek(fd, 0, SEEK_CUR);
		struct stat st;
		if (fstat(fd, &st) < 0)
			st.st_nlink = 99;
		say("deleted %ld off=%lld nlink=%d readok=%d offok=%d\n", n, (long long)off,
		    (int)st.st_nlink, readok, off == (4096 + 8 * n - 8) % DELSIZE + 8);
	}
}

#define SHMSIZE (1 << 20)

static uint64_t pat(uint64_t i, uint64_t seed) { return (i + seed) * 0x9E3779B97F4A7C15ull; }

static void __attribute__((noreturn)) shm(void)
{
	uint64_t *a = mmap(NULL, SHMSIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		die("mmap shared anonymous");
	int mfd = memfd_create("feat", 0);
	if (mfd < 0)
		die("memfd_create");
	if (dup2(mfd, 5) != 5)
		die("dup2");
	close(mfd);
	if (ftruncate(5, SHMSIZE) < 0)
		die("ftruncate");
	uint64_t *m = mmap(NULL, SHMSIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 5, 0);
	if (m == MAP_FAILED)
		die("mmap memfd");
	size_t words = SHMSIZE / 8;
	/* Leave the middle of each untouched: pages never written stay holes. */
	for (size_t i = 0; i < words; i++)
		if (i < words / 4 || i >= words / 2)
			a[i] = pat(i, 3), m[i] = pat(i, 4);
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(20);
		int shmok = 1, memfdok = 1;
		for (size_t i = 0; i < words - 1; i++) {
			uint64_t wa = i < words / 4 || i >= words / 2 ? pat(i, 3) : 0;
			uint64_t wm = i < words / 4 || i >= words / 2 ? pat(i, 4) : 0;
			shmok &= a[i] == wa;
			memfdok &= m[i] == wm;
		}
		/* Through the fd: the start of the memfd holds the pattern. */
		uint64_t w[16];
		int fdok = pread(5, w, sizeof w, 0) == sizeof w;
		for (int i = 0; i < 16 && fdok; i++)
			fdok = w[i] == pat(i, 4);
		/* A store through the mapping is seen through the fd. */
		m[words - 1] = (uint64_t)n;
		uint64_t back = 0;
		int sameok = pread(5, &back, 8, SHMSIZE - 8) == 8 && back == (uint64_t)n;
		say("shm %ld shm=%p memfd=%p shmok=%d memfdok=%d fdok=%d sameok=%d\n", n,
		    (void *)a, (void *)m, shmok, memfdok, fdok, sameok);
	}
}

#define PRIVPAGES 16

static void __attribute__((noreturn)) privmap(const char *path)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die("open");
	uint32_t *p = mmap(NULL, PRIVPAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	close(fd);
	size_t wpg = ps / 4; /* 32-bit words a page */
	static const int mine[] = {2, 5, 6};
	for (size_t k = 0; k < sizeof mine / sizeof mine[0]; k++)
		for (size_t i = 0; i < wpg; i++)
			p[mine[k] * wpg + i] = 0xdead0000u + mine[k] + (uint32_t)i;
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(20);
		int ok = 1;
		for (int pg = 0; pg < PRIVPAGES; pg++) {
			int own = pg == 2 || pg == 5 || pg == 6;
			/* Word 0 of pages 3 and 5 is the test's to change. */
			for (size_t i = 1; i < wpg; i++) {
				uint32_t want = own ? 0xdead0000u + pg + (uint32_t)i : (uint32_t)(pg * 1000 + i);
				ok &= p[pg * wpg + i] == want;
			}
			if (pg != 3 && pg != 5)
				ok &= p[pg * wpg] == (own ? 0xdead0000u + pg : (uint32_t)(pg * 1000));
		}
		say("privmap %ld p3=%x p5=%x privok=%d\n", n, p[3 * wpg], p[5 * wpg], ok);
	}
}

static char *alt;
static size_t altsize = 64 << 10;
static volatile sig_atomic_t ticks, offstack;

static void onalrm(int sig)
{
	char here;
	(void)sig;
	if (&here < alt || &here >= alt + altsize)
		offstack++;
	ticks++;
}

static void __attribute__((noreturn)) timer(void)
{
	alt = malloc(altsize);
	if (alt == NULL)
		die("malloc");
	stack_t ss = {.ss_sp = alt, .ss_size = altsize};
	if (sigaltstack(&ss, NULL) < 0)
		die("sigaltstack");
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = onalrm;
	sa.sa_flags = SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0)
		die("sigaction");
	struct itimerval it = {{0, 50000}, {0, 50000}};
	if (setitimer(ITIMER_REAL, &it, NULL) < 0)
		die("setitimer");
	say("start 0 pid=%d alt=%p\n", (int)getpid(), (void *)alt);
	for (long n = 1;; n++) {
		nap(100);
		stack_t cur;
		int ssok = sigaltstack(NULL, &cur) == 0 && cur.ss_sp == alt &&
			   cur.ss_size == altsize && !(cur.ss_flags & SS_DISABLE);
		say("timer %ld ticks=%d altok=%d ssok=%d\n", n, (int)ticks, offstack == 0, ssok);
	}
}

static void __attribute__((noreturn)) attrs(const char *dir, const char *name)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit");
	rl.rlim_cur = 100;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit");
	umask(027);
	if (chdir(dir) < 0)
		die("chdir");
	errno = 0;
	if (nice(5) < 0 && errno != 0)
		die("nice");
	if (prctl(PR_SET_NAME, name) < 0)
		die("prctl");
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(100);
		int limok = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 100;
		mode_t m = umask(027);
		umask(m);
		errno = 0;
		int pr = getpriority(PRIO_PROCESS, 0);
		char cwd[4096], comm[17] = {0};
		int cwdok = getcwd(cwd, sizeof cwd) != NULL && strcmp(cwd, dir) == 0;
		int commok = prctl(PR_GET_NAME, comm) == 0 && strcmp(comm, name) == 0;
		say("attrs %ld nofile=%llu umask=%03o nice=%d limok=%d umaskok=%d niceok=%d cwdok=%d commok=%d\n",
		    n, (unsigned long long)rl.rlim_cur, (unsigned)m, pr, limok, m == 027,
		    pr == 5, cwdok, commok);
	}
}

static void __attribute__((noreturn)) dupped(const char *data)
{
	int a = open(data, O_RDONLY);
	if (a < 0 || lseek(a, 1000, SEEK_SET) != 1000)
		die("open");
	int b = dup2(a, 7);
	if (b != 7)
		die("dup2");
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(20);
		int readok = 1;
		for (int k = 0; k < 2; k++) {
			int fd = k == 0 ? a : b;
			off_t at = lseek(fd, 0, SEEK_CUR);
			unsigned char buf[8];
			readok &= fullread(fd, buf, 8) == 8;
			for (int i = 0; i < 8 && readok; i++)
				readok = buf[i] == (unsigned char)((at + i) % 251);
		}
		off_t oa = lseek(a, 0, SEEK_CUR), ob = lseek(b, 0, SEEK_CUR);
		say("dup %ld off=%lld readok=%d sharedok=%d\n", n, (long long)oa, readok,
		    oa == ob && oa == 1000 + 16 * n);
	}
}

static volatile sig_atomic_t winches;

static void on_winch(int sig)
{
	(void)sig;
	winches++;
}

static void __attribute__((noreturn)) tty(void)
{
	char *name = ttyname(0);
	if (!name || open(name, O_RDWR | O_NOCTTY) != 3)
		die("open tty");
	struct termios tio;
	if (tcgetattr(3, &tio) < 0)
		die("tcgetattr");
	tio.c_lflag &= ~(ICANON | ECHO);
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(3, TCSANOW, &tio) < 0)
		die("tcsetattr");
	struct sigaction sa = {.sa_handler = on_winch, .sa_flags = SA_RESTART};
	sigaction(SIGWINCH, &sa, NULL);
	say("start 0 pid=%d\n", (int)getpid());
	long keys = 0;
	for (long n = 1;; n++) {
		nap(50);
		char buf[64];
		ssize_t r = read(3, buf, sizeof buf);
		if (r > 0)
			keys += r;
		if (tcgetattr(3, &tio) < 0)
			die("tcgetattr");
		struct stat s0, s3;
		int sameok = fstat(0, &s0) == 0 && fstat(3, &s3) == 0 && s0.st_rdev == s3.st_rdev;
		say("tty %ld icanon=%d echo=%d winch=%d keys=%ld sameok=%d\n", n, !!(tio.c_lflag & ICANON),
		    !!(tio.c_lflag & ECHO), (int)winches, keys, sameok);
	}
}

static volatile sig_atomic_t pa, pc, pbad_a, pbad_c;
static atomic_int pd;
static pthread_t pworker;

static void on_pa(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	pa++;
	if (si->si_value.sival_int != 4242 || si->si_code != SI_TIMER)
		pbad_a = 1;
}

static void on_pc(int sig)
{
	(void)sig;
	pc++;
	if (!pthread_equal(pthread_self(), pworker))
		pbad_c = 1;
}

static void on_pd(union sigval v)
{
	(void)v;
	atomic_fetch_add(&pd, 1);
}

static volatile pid_t pworker_tid;

static void *pwork(void *arg)
{
	(void)arg;
	pworker_tid = gettid();
	for (;;)
		pause();
	return NULL;
}

static void __attribute__((noreturn)) ptimer(void)
{
	struct sigaction sa = {.sa_sigaction = on_pa, .sa_flags = SA_SIGINFO | SA_RESTART};
	sigaction(SIGRTMIN + 1, &sa, NULL);
	struct sigaction sc = {.sa_handler = on_pc, .sa_flags = SA_RESTART};
	sigaction(SIGRTMIN + 2, &sc, NULL);
	/* Only the worker takes C's signal; it may take nothing else. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigfillset(&set);
	sigdelset(&set, SIGRTMIN + 2);
	sigset_t old;
	pthread_sigmask(SIG_SETMASK, &set, &old);
	if (pthread_create(&pworker, NULL, pwork, NULL) != 0)
		die("pthread_create");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	timer_t ta, tb, tc, td;
	struct sigevent ea = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1,
			      .sigev_value.sival_int = 4242};
	struct sigevent eb = {.sigev_notify = SIGEV_NONE};
	struct sigevent ec = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 2};
	struct sigevent ed = {.sigev_notify = SIGEV_THREAD, .sigev_notify_function = on_pd};
	while (!pworker_tid)
		nap(1);
	ec._sigev_un._tid = pworker_tid;
	if (timer_create(CLOCK_MONOTONIC, &ea, &ta) < 0 || timer_create(CLOCK_REALTIME, &eb, &tb) < 0 ||
	    timer_create(CLOCK_MONOTONIC, &ec, &tc) < 0 || timer_create(CLOCK_MONOTONIC, &ed, &td) < 0)
		die("timer_create");
	struct itimerspec ia = {{0, 20000000}, {0, 20000000}}, ib = {{0, 0}, {3600, 0}},
			  ic = {{0, 30000000}, {0, 30000000}}, id = {{0, 40000000}, {0, 40000000}};
	if (timer_settime(ta, 0, &ia, NULL) < 0 || timer_settime(tb, 0, &ib, NULL) < 0 ||
	    timer_settime(tc, 0, &ic, NULL) < 0 || timer_settime(td, 0, &id, NULL) < 0)
		die("timer_settime");
	say("start 0 pid=%d\n", (int)getpid());
	for (long n = 1;; n++) {
		nap(100);
		struct itimerspec cur;
		int bok = timer_gettime(tb, &cur) == 0 && cur.it_value.tv_sec < 3600 &&
			  (cur.it_value.tv_sec > 0 || cur.it_value.tv_nsec > 0) &&
			  cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == 0;
		int idok = timer_gettime(ta, &cur) == 0 && timer_gettime(tc, &cur) == 0 &&
			   timer_gettime(td, &cur) == 0;
		say("ptimer %ld a=%d c=%d d=%d aok=%d bok=%d cok=%d idok=%d\n", n, (int)pa, (int)pc,
		    atomic_load(&pd), !pbad_a, bok, !pbad_c, idok);
	}
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "files") == 0)
		files(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "deleted") == 0)
		deleted(argv[2]);
	if (argc == 2 && strcmp(argv[1], "shm") == 0)
		shm();
	if (argc == 3 && strcmp(argv[1], "privmap") == 0)
		privmap(argv[2]);
	if (argc == 2 && strcmp(argv[1], "timer") == 0)
		timer();
	if (argc == 4 && strcmp(argv[1], "attrs") == 0)
		attrs(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "dup") == 0)
		dupped(argv[2]);
	if (argc == 2 && strcmp(argv[1], "tty") == 0)
		tty();
	if (argc == 2 && strcmp(argv[1], "ptimer") == 0)
		ptimer();
	fprintf(stderr, "usage: features files DATA LOG | deleted PATH | shm | privmap FILE | timer | attrs DIR NAME | dup DATA | tty | ptimer\n");
	return 2;
}
