/*
 * threads: a pthreads victim for round-trip tests.
 *
 * Eight threads share a mutex-protected counter and each keeps __thread
 * variables with values of its own. Every 10 ms each thread adds one to
 * its own count and to the shared counter; every 10 iterations thread i
 * prints
 *
 *	tI N n=COUNT shared=S tlsok=1 sumok=1
 *
 * where N counts thread i's lines, tlsok says its __thread variables still
 * hold its own values and sumok says the shared counter equals the sum of
 * all threads' counts (checked under the mutex).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "say.h"

#define NTHREADS 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long shared;
static long counts[NTHREADS];

static __thread long tls_id = -1;
static __thread unsigned char tls_buf[256];
static __thread long tls_n;


static int tlsok(long id)
{
	if (tls_id != id)
		return 0;
	for (int i = 0; i < (int)sizeof tls_buf; i++)
		if (tls_buf[i] != (unsigned char)(id * 31 + i))
			return 0;
	return 1;
}

static void *worker(void *arg)
{
	long id = (long)arg;
	long lines = 0;
	struct timespec ts = {0, 10 * 1000 * 1000};
	char name[16];

	snprintf(name, sizeof name, "worker%ld", id);
	pthread_setname_np(pthread_self(), name);
	tls_id = id;
	for (int i = 0; i < (int)sizeof tls_buf; i++)
		tls_buf[i] = (unsigned char)(id * 31 + i);
	for (;;) {
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		ts.tv_sec = 0;
		ts.tv_nsec = 10 * 1000 * 1000;
		tls_n++;
		pthread_mutex_lock(&mu);
		counts[id]++;
		shared++;
		long sum = 0;
		for (int i = 0; i < NTHREADS; i++)
			sum += counts[i];
		long s = shared;
		int mine = counts[id] == tls_n;
		pthread_mutex_unlock(&mu);
		if (tls_n % 10 != 0)
			continue;
		lines++;
		say("t%ld %ld n=%ld shared=%ld tlsok=%d sumok=%d\n", id, lines, tls_n, s,
		    tlsok(id) && mine, sum == s);
	}
	return NULL;
}

int main(void)
{
	pthread_t th[NTHREADS];

	say("start 0 pid=%d\n", (int)getpid());
	for (long i = 0; i < NTHREADS; i++)
		if (pthread_create(&th[i], NULL, worker, (void *)i) != 0) {
			fprintf(stderr, "threads: pthread_create failed\n");
			return 1;
		}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	return 0;
}
