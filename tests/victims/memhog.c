/*
 * memhog: a benchmark victim holding MIB MiB of touched, non-zero,
 * incompressible memory in one private anonymous mapping.
 *
 * Usage: memhog MIB [CHILDREN [WRITE_MIBPS [ADDR:PORT]]]
 *
 * It prints "ready ADDR LEN" (hex address, length in bytes) once the
 * memory is filled, then sleeps. On SIGUSR1 it checks every byte of it
 * again and prints "verify ok", or "verify bad OFFSET" at the first
 * wrong word (for tests). A second thread wakes every millisecond
 * and prints "gap US" whenever more than 5 ms passed between two wakeups,
 * which shows how long the process was stopped (and, after a restore,
 * that it runs again).
 *
 * With CHILDREN, a tree: once the memory is filled the process forks
 * that many children, which keep the first half of it shared
 * copy-on-write (they never write it) and write the second half with a
 * pattern of their own, so that the tree holds MIB + CHILDREN * MIB/2
 * MiB of distinct memory. Every process then has its ticker, which
 * prints "gap US I", I being 0 for the parent and 1 to CHILDREN for
 * the children; the parent prints "ready ADDR LEN PID..." with its
 * children's PIDs once all of them have written their half. On
 * SIGUSR1 each process checks its own memory.
 *
 * With WRITE_MIBPS (for live dumps), a third thread of the process alone
 * keeps writing WRITE_MIBPS MiB of its memory a second, pages at random,
 * each a word written with the value it holds: the pages are written,
 * their contents stay what a check expects.
 *
 * With ADDR:PORT (an IPv4 address; the process alone), a server: a
 * thread listens there before "ready", takes every connection and
 * echoes what comes on each (for a server moved with its clients).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void say(const char *s, int n)
{
	while (n > 0) {
		ssize_t w = write(1, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			exit(3);
		s += w;
		n -= w;
	}
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* member is this process's number in a tree (see above), or -1 alone. */
static int member = -1;

/* parent is the PID of a child's parent: a child whose parent is gone
 * exits, so that no part of a tree outlives its root. */
static pid_t parent;

static void *ticker(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 1000 * 1000};
	int64_t last = now_us();
	for (;;) {
		nanosleep(&ts, NULL);
		if (member > 0 && getppid() != parent)
			_exit(0);
		int64_t t = now_us();
		if (t - last > 5000) {
			char buf[64];
			int n;
			if (member < 0)
				n = snprintf(buf, sizeof buf, "gap %lld\n", (long long)(t - last));
			else
				n = snprintf(buf, sizeof buf, "gap %lld %d\n", (long long)(t - last), member);
			say(buf, n);
		}
		last = t;
	}
	return NULL;
}

/* writer dirties mib MiB a second of the memory at random. */
static uint64_t *wmem;
static size_t wlen;
static int wmibps;

static void *writer(void *arg)
{
	(void)arg;
	uint64_t x = 88172645463325252ull;
	size_t pages = wlen / 4096, per_ms = (size_t)wmibps * 256 / 1000;
	struct timespec ts = {0, 1000 * 1000};
	for (size_t n = 0;; n++) {
		for (size_t i = 0; i < per_ms + (n % 1000 < (size_t)wmibps * 256 % 1000); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			volatile uint64_t *w = wmem + (x % pages) * 512;
			*w = *w;
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* server echoes on the connections it takes on listener fds[0], at most
 * MAXCONN at once. */
#define MAXCONN 1024
static void *server(void *arg)
{
	struct pollfd fds[1 + MAXCONN] = {{.fd = *(int *)arg, .events = POLLIN}};
	int n = 1;
	char buf[4096];
	for (;;) {
		if (poll(fds, n, -1) < 0)
			continue; /* EINTR */
		for (int i = n - 1; i > 0; i--) {
			if (!fds[i].revents)
				continue;
			ssize_t r = read(fds[i].fd, buf, sizeof buf);
			if (r > 0 && write(fds[i].fd, buf, r) == r)
				continue;
			close(fds[i].fd);
			fds[i] = fds[--n];
		}
		if (fds[0].revents && n < 1 + MAXCONN) {
			int c = accept(fds[0].fd, NULL, NULL);
			if (c >= 0)
				fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
		}
	}
	return NULL;
}

/* listen_on makes the listener of "ADDR:PORT", or exits. */
static int listen_on(const char *at)
{
	char addr[64];
	int port;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (sscanf(at, "%63[^:]:%d", addr, &port) != 2 || inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "memhog: %s is not ADDR:PORT\n", at);
		exit(2);
	}
	sa.sin_port = htons(port);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 128) < 0) {
		perror("memhog: listening");
		exit(1);
	}
	return l;
}

static volatile sig_atomic_t check;

static void on_usr1(int sig)
{
	(void)sig;
	check = 1;
}

/* seed is the pattern of process i of a tree (0: the parent, or a
 * process alone); never zero. */
static uint64_t seed(int i)
{
	return 0x9E3779B97F4A7C15ull + (uint64_t)i * 0x100000001B3ull;
}

/* fill writes the pattern that starts at x into p, or with verify finds
 * the first word that differs from it (-1: none). */
static long fill(uint64_t *p, size_t len, uint64_t x, int verify)
{
	for (size_t i = 0; i < len / 8; i++) {
		/* xorshift: incompressible, never zero */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (!verify)
			p[i] = x;
		else if (p[i] != x)
			return (long)i;
	}
	return -1;
}

/* check finds the first word of the process's memory that is not what it
 * wrote there (-1: none): a child's first half is its parent's. */
static long check_memory(uint64_t *p, size_t len)
{
	if (member <= 0)
		return fill(p, len, seed(0), 1);
	long bad = fill(p, len / 2, seed(0), 1);
	if (bad >= 0)
		return bad;
	bad = fill(p + len / 16, len / 2, seed(member), 1);
	return bad < 0 ? -1 : bad + (long)(len / 16);
}

/* fork_children forks n children, each of which writes the second half of
 * p with its own pattern and returns (member set); the parent returns
 * once every child has, with their PIDs in pids. */
static void fork_children(uint64_t *p, size_t len, int n, pid_t *pids)
{
	int fds[2];
	if (pipe(fds) < 0) {
		perror("memhog: pipe");
		exit(1);
	}
	parent = getpid();
	for (int i = 1; i <= n; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			perror("memhog: fork");
			exit(1);
		}
		if (pid == 0) {
			member = i;
			close(fds[0]);
			fill(p + len / 16, len / 2, seed(i), 0);
			if (write(fds[1], "x", 1) != 1)
				exit(3);
			close(fds[1]);
			return;
		}
		pids[i - 1] = pid;
	}
	close(fds[1]);
	member = 0;
	char c;
	for (int i = 0; i < n; i++)
		if (read(fds[0], &c, 1) != 1) {
			fprintf(stderr, "memhog: a child died\n");
			exit(1);
		}
	close(fds[0]);
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 5) {
		fprintf(stderr, "usage: memhog MIB [CHILDREN [WRITE_MIBPS [ADDR:PORT]]]\n");
		return 2;
	}
	size_t len = (size_t)strtoull(argv[1], NULL, 10) << 20;
	int children = argc >= 3 ? atoi(argv[2]) : 0;
	wmibps = argc >= 4 ? atoi(argv[3]) : 0;
	if (children < 0 || children > 64) {
		fprintf(stderr, "memhog: 0 to 64 children\n");
		return 2;
	}
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("memhog: mmap");
		return 1;
	}
	fill(p, len, seed(0), 0);
	pid_t pids[64];
	if (children > 0)
		fork_children(p, len, children, pids); /* threads come after fork */
	signal(SIGUSR1, on_usr1);
	pthread_t th;
	pthread_create(&th, NULL, ticker, NULL);
	if (wmibps > 0 && children == 0) {
		wmem = p;
		wlen = len;
		pthread_create(&th, NULL, writer, NULL);
	}
	static int listener;
	if (argc == 5 && children == 0) {
		listener = listen_on(argv[4]);
		pthread_create(&th, NULL, server, &listener);
	}
	char buf[64 + 12 * 64];
	int n = 0;
	if (member <= 0) {
		n = snprintf(buf, sizeof buf, "ready %lx %zu", (unsigned long)p, len);
		for (int i = 0; i < children; i++)
			n += snprintf(buf + n, sizeof buf - n, " %d", (int)pids[i]);
		buf[n++] = '\n';
		say(buf, n);
	}
	for (;;) {
		pause();
		if (check) {
			check = 0;
			long bad = check_memory(p, len);
			if (bad < 0)
				n = snprintf(buf, sizeof buf, "verify ok\n");
			else
				n = snprintf(buf, sizeof buf, "verify bad %ld\n", bad * 8);
			say(buf, n);
		}
	}
}
