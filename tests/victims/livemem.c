/*
 * livemem: a victim for live dumps. It writes its memory all the time,
 * so that a dump that misses a write shows it: memory that does not agree
 * with itself.
 *
 *   livemem MIB THREADS CHURN [PAGES_PER_MS [uffd]]
 *
 * Each of THREADS writers owns MIB/THREADS MiB of pages and writes them
 * at random, as fast as it can (or PAGES_PER_MS pages a millisecond): a
 * page p written for the s-th time holds pattern(p, s) in every word,
 * and seq[p] = s, writes += 1 are stored after it. seq and writes live in
 * other pages than the data, so a write the dump kept only half of is
 * seen. With CHURN set, the first writer also maps and unmaps regions,
 * grows its heap with sbrk, drops pages with MADV_DONTNEED (seq 0: the
 * page must read as zeros) and starts a thread now and then whose stack
 * holds a pattern.
 *
 * With "uffd" it holds a userfaultfd of its own; with "sparse" it also
 * maps 256 GiB of memory it never touches but for a few pages (as a
 * runtime reserves address space). With "tree K" it forks K children
 * once its memory is filled, which write their copies of it (shared
 * copy-on-write until one of them writes a page) as it writes its own;
 * with "tree K cycle" (THREADS 1) it also kills its oldest child and
 * forks a new one every 20 ms. Its children check their memory when
 * it checks its own (it sends them SIGUSR1; no child is killed in the 5
 * s after), and die with it.
 *
 * On SIGUSR2 (to any of its threads) the last writer of the root forks
 * a child that, unlike those of "tree", does not die with it (as a
 * daemon's worker may not): it goes on writing its copy of that
 * writer's pages, and checks them when the root checks its own.
 *
 * On SIGUSR1 every writer checks its pages, seq and writes, and prints
 * "check T ok writes=N pid=P" or "check T bad ..."; every churn object is
 * checked too. Each writer prints "rate T N" every second: the pages it
 * wrote in that second.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include "say.h"

#define PAGE 4096
#define WORDS (PAGE / 8)

static volatile sig_atomic_t gen, forks;
static int rate, forker; /* forker: the writer that forks on SIGUSR2 */

/* The tree: the children of the root (is_root), and the cycling. */
static int is_root = 1, cycle, nkids, oldest;
static pid_t kids[64];
static double quiet_until; /* no cycling while the children check */

struct writer {
	int id;
	uint64_t *data; /* npages pages */
	uint64_t *seq;  /* its own mapping */
	uint64_t npages;
	uint64_t writes;
	uint64_t rng;
	int churn;
};

static uint64_t pattern(uint64_t p, uint64_t s)
{
	return s == 0 ? 0 : (p * 0x9E3779B97F4A7C15ull) ^ (s * 0xD1B54A32D192ED03ull) ^ 1;
}

static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill(uint64_t *page, uint64_t v)
{
	for (int i = 0; i < WORDS; i++)
		page[i] = v;
}

static int same(const uint64_t *page, uint64_t v)
{
	for (int i = 0; i < WORDS; i++)
		if (page[i] != v)
			return 0;
	return 1;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Churn: regions mapped and unmapped, heap grown, stacks of threads. */
#define REGIONS 8
#define REGION_PAGES 64
static struct {
	uint64_t *at[REGIONS];
	uint64_t tag[REGIONS];
	uint64_t made;
	char *heap[1024]; /* chunks of 4 pages from sbrk (malloc may use brk too) */
	uint64_t heap_pages;
	int sleepers;
	/* what each sleeper found at the last check it made, and when */
	volatile int sleeper_gen[32];
	volatile int sleeper_ok[32];
} ch;

static void *sleeper(void *arg)
{
	int me = (int)(uintptr_t)arg;
	uint64_t tag = me + 7;
	uint64_t local[2 * WORDS];
	for (int i = 0; i < 2 * WORDS; i++)
		local[i] = pattern(tag, i + 1);
	int seen = gen;
	for (;;) {
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
		if (gen != seen) {
			seen = gen;
			int ok = 1;
			for (int i = 0; i < 2 * WORDS; i++)
				ok &= local[i] == pattern(tag, i + 1);
			ch.sleeper_ok[me] = ok;
			__atomic_store_n(&ch.sleeper_gen[me], seen, __ATOMIC_SEQ_CST);
		}
	}
	return NULL;
}

static void churn(struct writer *w)
{
	uint64_t r = next(&w->rng);
	int slot = ch.made % REGIONS;
	if (ch.at[slot])
		munmap(ch.at[slot], REGION_PAGES * PAGE);
	ch.at[slot] = mmap(NULL, REGION_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ch.at[slot] == MAP_FAILED)
		exit(4);
	ch.tag[slot] = ++ch.made;
	for (int i = 0; i < REGION_PAGES; i++)
		fill(ch.at[slot] + i * WORDS, pattern(1000000 + ch.tag[slot], i + 1));
	if (ch.heap_pages < 4096) {
		char *p = sbrk(4 * PAGE);
		if (p == (void *)-1)
			exit(5);
		ch.heap[ch.heap_pages / 4] = p;
		for (int i = 0; i < 4; i++)
			fill((uint64_t *)(p + i * PAGE), pattern(2000000, ch.heap_pages + i + 1));
		ch.heap_pages += 4;
	}
	uint64_t p = r % w->npages;
	madvise((char *)w->data + p * PAGE, PAGE, MADV_DONTNEED);
	w->writes -= w->seq[p];
	w->seq[p] = 0;
	if (ch.made % 16 == 1 && ch.sleepers < 32) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &a, sleeper, (void *)(uintptr_t)ch.sleepers) == 0)
			ch.sleepers++;
	}
}

static void check_churn(void)
{
	int bad = 0;
	for (int s = 0; s < REGIONS; s++)
		for (int i = 0; ch.at[s] && i < REGION_PAGES; i++)
			bad += !same(ch.at[s] + i * WORDS, pattern(1000000 + ch.tag[s], i + 1));
	for (uint64_t i = 0; i < ch.heap_pages; i++)
		bad += !same((uint64_t *)(ch.heap[i / 4] + (i % 4) * PAGE), pattern(2000000, i + 1));
	int want = ch.sleepers, checked = 0, good = 0;
	for (int tries = 0; tries < 400; tries++) {
		checked = good = 0;
		for (int i = 0; i < want; i++) {
			checked += ch.sleeper_gen[i] == gen;
			good += ch.sleeper_gen[i] == gen && ch.sleeper_ok[i];
		}
		if (checked == want)
			break;
		struct timespec ts = {0, 5000000};
		nanosleep(&ts, NULL);
	}
	say("churn %s regions=%llu heap=%llu sleepers=%d/%d badpages=%d\n",
	    bad == 0 && good == want ? "ok" : "bad",
	    (unsigned long long)ch.made, (unsigned long long)ch.heap_pages, good, want, bad);
}

/* forkchild forks a child of the tree: 0 in the child, which dies with
 * its parent. */
static pid_t forkchild(void)
{
	pid_t p = fork();
	if (p < 0)
		exit(8);
	if (p == 0) {
		is_root = 0;
		nkids = 0;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
	}
	return p;
}

/* recycle kills the oldest child, waits for it, and forks a new one in
 * its place. */
static void recycle(void)
{
	kill(kids[oldest], SIGKILL);
	waitpid(kids[oldest], NULL, 0);
	pid_t p = forkchild();
	if (p == 0)
		return;
	kids[oldest] = p;
	oldest = (oldest + 1) % nkids;
}

static void check(struct writer *w)
{
	for (int i = 0; is_root && i < nkids; i++)
		kill(kids[i], SIGUSR1);
	quiet_until = now() + 5;
	uint64_t bad = 0, sum = 0, first = ~0ull;
	for (uint64_t p = 0; p < w->npages; p++) {
		sum += w->seq[p];
		if (!same(w->data + p * WORDS, pattern(p, w->seq[p]))) {
			bad++;
			if (first == ~0ull)
				first = p;
		}
	}
	if (bad || sum != w->writes)
		say("check %d bad pages=%llu first=%lld sum=%llu writes=%llu\n", w->id, (unsigned long long)bad,
		    (long long)first, (unsigned long long)sum, (unsigned long long)w->writes);
	else
		say("check %d ok writes=%llu pid=%d\n", w->id, (unsigned long long)w->writes, getpid());
	if (w->churn)
		check_churn();
}

static void *run(void *arg)
{
	struct writer *w = arg;
	int seen = gen, forked = forks;
	double last = now(), lastcycle = now();
	uint64_t done = 0, budget = 0;
	for (uint64_t n = 0;; n++) {
		if (gen != seen) {
			seen = gen;
			check(w);
		}
		if (forks != forked && w->id == forker && is_root) {
			forked = forks;
			pid_t p = fork();
			if (p < 0)
				exit(8);
			if (p == 0)
				is_root = 0, nkids = 0;
			else if (nkids < 64)
				kids[nkids++] = p;
		}
		if (rate && budget == 0) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
			budget = rate;
		}
		uint64_t p = next(&w->rng) % w->npages;
		uint64_t s = w->seq[p] + 1;
		fill(w->data + p * WORDS, pattern(p, s));
		w->seq[p] = s;
		w->writes++;
		done++;
		if (budget)
			budget--;
		if (w->churn && n % 256 == 255)
			churn(w);
		if (cycle && is_root && nkids > 0 && n % 256 == 128 && now() - lastcycle >= 0.02 && now() >= quiet_until) {
			recycle();
			lastcycle = now();
		}
		if ((n & 255) == 0 && now() - last >= 1) {
			say("rate %d %llu\n", w->id, (unsigned long long)done);
			done = 0;
			last = now();
		}
	}
	return NULL;
}

static void onusr1(int sig) { gen++; }

static void onusr2(int sig) { forks++; }

int main(int argc, char **argv)
{
	if (argc < 4) {
		say("usage: livemem MIB THREADS CHURN [PAGES_PER_MS]\n");
		return 2;
	}
	uint64_t mib = atoll(argv[1]);
	int threads = atoi(argv[2]);
	forker = threads - 1;
	if (argc > 4)
		rate = atoi(argv[4]);
	if (argc > 5 && strcmp(argv[5], "uffd") == 0 && syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* user mode only */) < 0)
		return 6;
	if (argc > 5 && strcmp(argv[5], "sparse") == 0) {
		size_t big = (size_t)256 << 30;
		char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p == MAP_FAILED)
			return 7;
		for (int i = 0; i < 16; i++)
			p[(big / 16) * i] = 1;
	}
	struct sigaction sa = {.sa_handler = onusr1, .sa_flags = SA_RESTART};
	sigaction(SIGUSR1, &sa, NULL);
	struct sigaction sa2 = {.sa_handler = onusr2, .sa_flags = SA_RESTART};
	sigaction(SIGUSR2, &sa2, NULL);
	static struct writer ws[64];
	pthread_t ts[64];
	for (int i = 0; i < threads && i < 64; i++) {
		struct writer *w = &ws[i];
		w->id = i;
		w->npages = mib * 256 / threads;
		w->data = mmap(NULL, w->npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		w->seq = mmap(NULL, w->npages * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w->data == MAP_FAILED || w->seq == MAP_FAILED)
			return 3;
		w->rng = 88172645463325252ull + i;
		w->churn = i == 0 && atoi(argv[3]);
		for (uint64_t p = 0; p < w->npages; p++) {
			fill(w->data + p * WORDS, pattern(p, 1));
			w->seq[p] = 1;
		}
		w->writes = w->npages;
	}
	if (argc > 6 && strcmp(argv[5], "tree") == 0) {
		int k = atoi(argv[6]);
		cycle = argc > 7 && strcmp(argv[7], "cycle") == 0 && threads == 1;
		for (int i = 0; i < k && i < 64; i++) {
			pid_t p = forkchild();
			if (p == 0)
				break;
			kids[nkids++] = p;
		}
	}
	if (is_root)
		say("ready pid=%d\n", getpid());
	for (int i = 1; i < threads; i++)
		pthread_create(&ts[i], NULL, run, &ws[i]);
	run(&ws[0]);
	return 0;
}
