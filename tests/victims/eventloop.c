/*
 * eventloop DIR: an event loop on one epoll, as systemd-style daemons and
 * many Rust and Go runtimes have it, that checks its own timers.
 *
 *   rel   a CLOCK_MONOTONIC timerfd, relative, every 100 ms;
 *   abs   a CLOCK_MONOTONIC timerfd, TFD_TIMER_ABSTIME, every 150 ms;
 *   wall  a CLOCK_REALTIME timerfd, TFD_TIMER_ABSTIME, every 200 ms from a
 *         whole second;
 *   lazy  a CLOCK_MONOTONIC timerfd every 30 ms that the loop reads only
 *         every 10th tick of rel: its expirations wait in it;
 *   once  a CLOCK_BOOTTIME one-shot timerfd, 2.5 s after the start;
 *   sig   a signalfd for SIGUSR1 and SIGRTMIN+1 (both blocked);
 *   ev    an eventfd that rel's tick writes and the loop reads;
 *   ino   an inotify watching DIR/watched (IN_MODIFY) and DIR (IN_CREATE),
 *         under watch descriptors 3 and 7 (added and removed first);
 *   pipe  a pipe with O_ASYNC, owned by the process (F_SETOWN), whose
 *         signal is SIGRTMIN+1 (F_SETSIG): rel's 10th ticks write to it,
 *         and the signal comes through the signalfd.
 *
 * Each read of a timer prints "NAME N total=T want=W ok=0|1": T the
 * expirations read so far, W those due by its clock right after the
 * read; ok when T is at most W, and at least those due right before the
 * read (less one: an expiry may come up to the timer slack late).
 * Other events print "sig ...", "ino ...", "ev ...", "sigio ...".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include "say.h"

struct timer {
	const char *name;
	int clock, fd, n;
	int64_t first, period; /* ns on its clock; period 0: one shot */
	uint64_t total;
};

static int64_t now(int clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ts(int64_t ns)
{
	return (struct timespec){ns / 1000000000LL, ns % 1000000000LL};
}

static void arm(struct timer *t, int flags, int64_t value)
{
	struct itimerspec its = {ts(t->period), ts(value)};
	t->fd = timerfd_create(t->clock, TFD_NONBLOCK | TFD_CLOEXEC);
	if (t->fd < 0 || timerfd_settime(t->fd, flags, &its, NULL) < 0) {
		say("error timer %s\n", t->name);
		exit(2);
	}
}

/* due is how many expirations of t are due at time at of its clock. */
static uint64_t due(struct timer *t, int64_t at)
{
	int64_t d = at - t->first;
	return d < 0 ? 0 : t->period ? d / t->period + 1 : 1;
}

static void readTimer(struct timer *t)
{
	uint64_t got;
	int64_t before = now(t->clock);
	if (read(t->fd, &got, 8) != 8)
		return;
	uint64_t lo = due(t, before), hi = due(t, now(t->clock));
	t->total += got;
	t->n++;
	/* An expiry may come up to the timer slack (50 us) late. */
	say("%s %d total=%llu want=%llu got=%llu ok=%d\n", t->name, t->n, (unsigned long long)t->total,
	    (unsigned long long)hi, (unsigned long long)got, t->total + 1 >= lo && t->total <= hi);
}

static void add(int ep, int fd)
{
	struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
		say("error epoll_ctl %d\n", fd);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	if (argc != 2 || chdir(argv[1]) < 0)
		return 2;
	close(open("watched", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));

	struct timer rel = {"rel", CLOCK_MONOTONIC}, abs_ = {"abs", CLOCK_MONOTONIC}, wall = {"wall", CLOCK_REALTIME},
		     lazy = {"lazy", CLOCK_MONOTONIC}, once = {"once", CLOCK_BOOTTIME};
	rel.period = 100000000;
	rel.first = now(CLOCK_MONOTONIC) + rel.period;
	arm(&rel, 0, rel.period);
	abs_.period = 150000000;
	abs_.first = now(CLOCK_MONOTONIC) + abs_.period;
	arm(&abs_, TFD_TIMER_ABSTIME, abs_.first);
	wall.period = 200000000;
	wall.first = (now(CLOCK_REALTIME) / 1000000000 + 1) * 1000000000;
	arm(&wall, TFD_TIMER_ABSTIME, wall.first);
	lazy.period = 30000000;
	lazy.first = now(CLOCK_MONOTONIC) + lazy.period;
	arm(&lazy, 0, lazy.period);
	once.first = now(CLOCK_BOOTTIME) + 2500000000LL;
	arm(&once, 0, 2500000000LL);

	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGRTMIN + 1);
	sigprocmask(SIG_BLOCK, &m, NULL);
	int sig = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
	int ev = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	for (int i = 0; i < 2; i++)
		inotify_rm_watch(ino, inotify_add_watch(ino, "watched", IN_MODIFY));
	int wfile = inotify_add_watch(ino, "watched", IN_MODIFY);
	for (int i = 0; i < 3; i++)
		inotify_rm_watch(ino, inotify_add_watch(ino, ".", IN_CREATE));
	int wdir = inotify_add_watch(ino, ".", IN_CREATE);
	char buf[4096];
	while (read(ino, buf, sizeof buf) > 0)
		; /* the IN_IGNORED of the removed ones */

	int p[2];
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0 || fcntl(p[0], F_SETOWN, getpid()) < 0 ||
	    fcntl(p[0], F_SETSIG, SIGRTMIN + 1) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK | O_ASYNC) < 0) {
		say("error pipe\n");
		return 2;
	}

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct timer *timers[] = {&rel, &abs_, &wall, &once};
	for (int i = 0; i < 4; i++)
		add(ep, timers[i]->fd);
	add(ep, sig);
	add(ep, ev);
	add(ep, ino);
	say("ready pid=%d wd file=%d dir=%d sigio fd=%d\n", getpid(), wfile, wdir, p[0]);

	for (;;) {
		struct epoll_event es[16];
		int n = epoll_wait(ep, es, 16, -1);
		for (int i = 0; i < n; i++) {
			int fd = es[i].data.fd;
			for (int k = 0; k < 4; k++)
				if (fd == timers[k]->fd)
					readTimer(timers[k]);
			if (fd == rel.fd) {
				uint64_t one = 1;
				if (write(ev, &one, 8) != 8)
					say("error eventfd write\n");
				if (rel.n % 10 == 0) {
					readTimer(&lazy);
					if (write(p[1], "x", 1) != 1)
						say("error pipe write\n");
				}
			}
			if (fd == ev) {
				uint64_t v;
				if (read(ev, &v, 8) == 8 && rel.n % 10 == 0)
					say("ev %d value=%llu\n", rel.n, (unsigned long long)v);
			}
			if (fd == sig) {
				struct signalfd_siginfo si;
				while (read(sig, &si, sizeof si) == sizeof si) {
					if ((int)si.ssi_signo == SIGRTMIN + 1) {
						say("sigio fd=%d band=%x\n", si.ssi_fd, si.ssi_band);
						while (read(p[0], buf, sizeof buf) > 0)
							;
					} else
						say("sig %d from=%d\n", si.ssi_signo, si.ssi_pid);
				}
			}
			if (fd == ino) {
				ssize_t len = read(ino, buf, sizeof buf);
				for (char *q = buf; len > 0 && q < buf + len;) {
					struct inotify_event *e = (struct inotify_event *)q;
					say("ino wd=%d mask=%x name=%s\n", e->wd, e->mask, e->len ? e->name : "-");
					q += sizeof *e + e->len;
				}
			}
		}
	}
}
