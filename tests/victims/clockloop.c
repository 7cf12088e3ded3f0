/*
 * clockloop: a victim that spends nearly all its time in the vDSO, for
 * the tests of procs-dump's stepping threads out of it and of restores
 * that call this kernel's vDSO through jumps.
 *
 * Two threads call clock_gettime(CLOCK_MONOTONIC), gettimeofday and time
 * in a tight loop and check that each clock never goes back; every 100 ms
 * of CLOCK_MONOTONIC, thread I prints
 *
 *	cI N calls=K monook=1
 *
 * where N counts thread I's lines, K its calls since the last line, and
 * monook says no clock went back.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

#include "say.h"

static void *loop(void *arg)
{
	long id = (long)arg;
	int64_t last = 0, lastus = 0, next = 0;
	time_t lastt = 0;
	long n = 0, calls = 0;
	int ok = 1;
	for (;;) {
		struct timespec ts;
		struct timeval tv;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		gettimeofday(&tv, NULL);
		time_t t = time(NULL);
		int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
		int64_t us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
		if (now < last || us < lastus || t < lastt)
			ok = 0;
		last = now;
		lastus = us;
		lastt = t;
		calls++;
		if (now >= next) {
			if (next != 0)
				say("c%ld %ld calls=%ld monook=%d\n", id, ++n, calls, ok);
			next = now + 100 * 1000 * 1000;
			calls = 0;
		}
	}
	return NULL;
}

int main(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, loop, (void *)1) != 0)
		return 1;
	loop((void *)0);
	return 0;
}
