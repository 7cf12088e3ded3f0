/*
 * memhog: a benchmark victim holding MIB MiB of touched, non-zero,
 * incompressible memory in one private anonymous mapping.
 *
 * Usage: memhog MIB
 *
 * It prints "ready ADDR LEN" (hex address, length in bytes) once the
 * memory is filled, then sleeps. On SIGUSR1 it checks every byte of it
 * again and prints "verify ok", or "verify bad OFFSET" at the first
 * wrong word (for tests). A second thread wakes every millisecond
 * and prints "gap US" whenever more than 5 ms passed between two wakeups,
 * which shows how long the process was stopped (and, after a restore,
 * that it runs again).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

static void *ticker(void *arg)
{
	(void)arg;
	struct timespec ts = {0, 1000 * 1000};
	int64_t last = now_us();
	for (;;) {
		nanosleep(&ts, NULL);
		int64_t t = now_us();
		if (t - last > 5000) {
			char buf[64];
			int n = snprintf(buf, sizeof buf, "gap %lld\n", (long long)(t - last));
			say(buf, n);
		}
		last = t;
	}
	return NULL;
}

static volatile sig_atomic_t check;

static void on_usr1(int sig)
{
	(void)sig;
	check = 1;
}

/* fill writes the memory's pattern into p, or with verify finds the
 * first word that differs from it (-1: none). */
static long fill(uint64_t *p, size_t len, int verify)
{
	uint64_t x = 0x9E3779B97F4A7C15ull;
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

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: memhog MIB\n");
		return 2;
	}
	size_t len = (size_t)strtoull(argv[1], NULL, 10) << 20;
	uint64_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("memhog: mmap");
		return 1;
	}
	fill(p, len, 0);
	signal(SIGUSR1, on_usr1);
	pthread_t th;
	pthread_create(&th, NULL, ticker, NULL);
	char buf[64];
	int n = snprintf(buf, sizeof buf, "ready %lx %zu\n", (unsigned long)p, len);
	say(buf, n);
	for (;;) {
		pause();
		if (check) {
			check = 0;
			long bad = fill(p, len, 1);
			if (bad < 0)
				n = snprintf(buf, sizeof buf, "verify ok\n");
			else
				n = snprintf(buf, sizeof buf, "verify bad %ld\n", bad * 8);
			say(buf, n);
		}
	}
}
