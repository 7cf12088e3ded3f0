/*
 * blocked: a victim that spends its time blocked in one system call, so a
 * dump catches it inside that call.
 *
 * Usage: blocked sleep|read|poll|longpoll
 *
 *	sleep	loops on nanosleep(2 s) and prints "sleep N rcok=1" after
 *		each, rcok saying nanosleep returned 0 (it was not cut short).
 *	read	prints "ready 0", then loops on read(0) and prints
 *		"read N got=TEXT" for each line read; "eof N" at end of file.
 *	poll	loops on poll(fd 0, POLLIN, 300 ms) and prints "poll N rc=0"
 *		on each timeout and "poll N got=TEXT" when data came.
 *	longpoll	loops on poll(fd 0, POLLIN, 10 min) and prints "poll N
 *		got=TEXT" when data came, "eintr N" when poll failed with
 *		EINTR (no signal handler is set: it never should).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "say.h"


/*
 * readchunk reads once from fd 0 into buf as a string, trailing newlines
 * stripped and inner ones shown as '|', and returns what read returned.
 */
static ssize_t readchunk(char *buf, size_t size)
{
	ssize_t r;
	do
		r = read(0, buf, size - 1);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return r;
	buf[r] = 0;
	for (ssize_t n = r; n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r');)
		buf[--n] = 0;
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = '|';
	return r;
}

int main(int argc, char **argv)
{
	char buf[256];
	long n = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: blocked sleep|read|poll|longpoll\n");
		return 2;
	}
	if (strcmp(argv[1], "sleep") == 0) {
		say("start 0 pid=%d\n", (int)getpid());
		for (;;) {
			struct timespec ts = {2, 0};
			int rc = nanosleep(&ts, NULL);
			say("sleep %ld rcok=%d\n", ++n, rc == 0);
		}
	} else if (strcmp(argv[1], "read") == 0) {
		say("ready 0 pid=%d\n", (int)getpid());
		for (;;) {
			ssize_t r = readchunk(buf, sizeof buf);
			if (r < 0) {
				say("error %ld errno=%d\n", ++n, errno);
				return 1;
			}
			if (r == 0) {
				say("eof %ld\n", ++n);
				return 0;
			}
			say("read %ld got=%s\n", ++n, buf);
		}
	} else if (strcmp(argv[1], "poll") == 0) {
		say("start 0 pid=%d\n", (int)getpid());
		for (;;) {
			struct pollfd p = {.fd = 0, .events = POLLIN};
			int rc = poll(&p, 1, 300);
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc < 0) {
				say("error %ld errno=%d\n", ++n, errno);
				return 1;
			}
			if (rc == 0) {
				say("poll %ld rc=0\n", ++n);
				continue;
			}
			ssize_t r = readchunk(buf, sizeof buf);
			if (r <= 0) {
				say("eof %ld\n", ++n);
				return 0;
			}
			say("poll %ld got=%s\n", ++n, buf);
		}
	}
	if (strcmp(argv[1], "longpoll") == 0) {
		say("start 0 pid=%d\n", (int)getpid());
		for (;;) {
			struct pollfd p = {.fd = 0, .events = POLLIN};
			int rc = poll(&p, 1, 600000);
			if (rc < 0 && errno == EINTR) {
				say("eintr %ld\n", ++n);
				continue;
			}
			if (rc <= 0 || readchunk(buf, sizeof buf) <= 0) {
				say("error %ld rc=%d errno=%d\n", ++n, rc, errno);
				return 1;
			}
			say("poll %ld got=%s\n", ++n, buf);
		}
	}
	fprintf(stderr, "blocked: unknown mode %s\n", argv[1]);
	return 2;
}
