/*
 * counter: a single-threaded victim for round-trip tests.
 *
 * Usage: counter APPENDFILE READFILE
 *
 * It keeps a counter in a global, an 8 MiB heap block and a 64 KiB stack
 * block filled with known patterns, a file opened O_APPEND and one opened
 * for reading. Every 10 ms it increments the counter; every 10 iterations
 * it prints
 *
 *	tick N c=C usr1=U off=O cok=1 heapok=1 stackok=1 readok=1
 *
 * where N counts tick lines, C is the counter (always 10*N), O is the
 * offset of the read file (8 bytes are read per tick, so O is 8*N) and each
 * *ok field says whether the check held. It appends "N\n" to APPENDFILE
 * each tick. READFILE must hold bytes whose value at offset k is k%251.
 * On SIGUSR1 it prints "usr1 U" with U the number of SIGUSR1 received.
 * Lines are written with write(2) to fd 1.
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
#include <time.h>
#include <unistd.h>

#include "say.h"

#define HEAPSIZE (8 << 20)
#define STACKSIZE (64 << 10)

long counter;
static volatile sig_atomic_t usr1;
static uint64_t *heap;

static void onusr1(int sig) { (void)sig; usr1++; }

static uint64_t pat(uint64_t i, uint64_t seed) { return (i + seed) * 0x9E3779B97F4A7C15ull; }

static void __attribute__((noinline)) fill(uint64_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = pat(i, seed);
}

static int __attribute__((noinline)) check(const uint64_t *p, size_t n, uint64_t seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat(i, seed))
			return 0;
	return 1;
}


static void __attribute__((noinline, noreturn)) run(int afd, int rfd, uint64_t *stk)
{
	long n = 0;
	sig_atomic_t seen = 0;
	struct timespec ts = {0, 10 * 1000 * 1000};

	for (;;) {
		counter++;
		while (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			;
		if (usr1 != seen) {
			seen = usr1;
			say("usr1 %d\n", (int)seen);
		}
		if (counter % 10 != 0)
			continue;
		n++;
		unsigned char b[8];
		int readok = 1;
		off_t at = lseek(rfd, 0, SEEK_CUR);
		if (read(rfd, b, 8) != 8)
			readok = 0;
		for (int i = 0; i < 8 && readok; i++)
			if (b[i] != (unsigned char)((at + i) % 251))
				readok = 0;
		off_t off = lseek(rfd, 0, SEEK_CUR);
		char line[32];
		int len = snprintf(line, sizeof line, "%ld\n", n);
		if (write(afd, line, len) != len)
			readok = 0;
		say("tick %ld c=%ld usr1=%d off=%lld cok=%d heapok=%d stackok=%d readok=%d offok=%d\n",
		    n, counter, (int)seen, (long long)off, counter == 10 * n,
		    check(heap, HEAPSIZE / 8, 1), check(stk, STACKSIZE / 8, 2),
		    readok, off == 8 * n);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: counter APPENDFILE READFILE\n");
		return 2;
	}
	int afd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int rfd = open(argv[2], O_RDONLY);
	if (afd < 0 || rfd < 0) {
		perror("counter: open");
		return 1;
	}
	heap = malloc(HEAPSIZE);
	if (heap == NULL)
		return 1;
	fill(heap, HEAPSIZE / 8, 1);
	uint64_t stk[STACKSIZE / 8];
	fill(stk, STACKSIZE / 8, 2);

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = onusr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	say("start 0 pid=%d\n", (int)getpid());
	run(afd, rfd, stk);
}
