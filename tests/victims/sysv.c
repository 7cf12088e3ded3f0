/*
 * sysv: a parent and a child that share System V IPC objects.
 *
 * Usage: sysv KEY
 *
 * The parent makes, at keys KEY, KEY+1 and KEY+2:
 *  - a shared memory segment of 3 pages and 100 bytes, mode 0640, that
 *    begins with the text "sysv-magic" and holds two counters, and a
 *    second, private one (IPC_PRIVATE) that it marks for removal
 *    (IPC_RMID) once both have it attached;
 *  - a semaphore set of 3, mode 0600, set to 5, 7 and 0;
 *  - a message queue, mode 0600, with 4 messages queued: types 1, 2, 3, 1
 *    and texts "one", "two", "three", "four".
 * It forks a child, which also attaches the first segment read-only
 * at a second address. Every 20 ms the parent increments counter 0 of
 * the segment, the child counter 1, and each increments a counter of
 * the removed segment; every 5 of its steps the parent prints
 *
 *	tick N p=P c=C r=R sem=A,B,S magic=1 ro=V
 *
 * N counting lines, P and C the counters as the parent reads them, R the
 * removed segment's counter, A, B, S the semaphores (the parent adds 1
 * to the third each line), magic whether the text is there, V the parent's counter as the
 * child last read it through its read-only view (and wrote at offset
 * 4096). When the file "drain" exists in its folder, the parent takes
 * every message from the queue (IPC_NOWAIT) and prints "msg T TEXT" for
 * each, then "drained", and removes the file.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "say.h"

#define SIZE (3 * 4096 + 100)

static void nap(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void die(const char *what)
{
	say("error %s: %s\n", what, strerror(errno));
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	key_t key = (key_t)strtol(argv[1], NULL, 0);
	int shm = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0640);
	int rm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	int sem = semget(key + 1, 3, IPC_CREAT | IPC_EXCL | 0600);
	int msg = msgget(key + 2, IPC_CREAT | IPC_EXCL | 0600);
	if (shm < 0 || rm < 0 || sem < 0 || msg < 0)
		die("get");
	volatile uint64_t *p = shmat(shm, NULL, 0);
	volatile uint64_t *r = shmat(rm, NULL, 0);
	if (p == (void *)-1 || r == (void *)-1)
		die("shmat");
	strcpy((char *)p + 2048, "sysv-magic");
	unsigned short vals[3] = {5, 7, 0};
	if (semctl(sem, 0, SETALL, vals) < 0)
		die("semctl");
	const char *texts[] = {"one", "two", "three", "four"};
	long types[] = {1, 2, 3, 1};
	for (int i = 0; i < 4; i++) {
		struct { long type; char text[16]; } m = {types[i], ""};
		strcpy(m.text, texts[i]);
		if (msgsnd(msg, &m, strlen(texts[i]) + 1, 0) < 0)
			die("msgsnd");
	}
	pid_t child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		volatile uint64_t *ro = shmat(shm, NULL, SHM_RDONLY);
		if (ro == (void *)-1)
			die("shmat ro");
		for (;;) {
			p[1]++;
			r[1]++;
			/* What the read-only view shows of the parent's counter. */
			p[512] = ro[0];
			nap();
		}
	}
	shmctl(rm, IPC_RMID, NULL);
	for (uint64_t n = 1;; n++) {
		for (int i = 0; i < 5; i++) {
			p[0]++;
			r[0]++;
			nap();
		}
		struct sembuf op = {2, 1, 0};
		if (semop(sem, &op, 1) < 0)
			die("semop");
		int a = semctl(sem, 0, GETVAL), b = semctl(sem, 1, GETVAL), s = semctl(sem, 2, GETVAL);
		say("tick %llu p=%llu c=%llu r=%llu sem=%d,%d,%d magic=%d ro=%llu\n", (unsigned long long)n,
		    (unsigned long long)p[0], (unsigned long long)p[1], (unsigned long long)(r[0] + r[1]),
		    a, b, s, strcmp((char *)p + 2048, "sysv-magic") == 0, (unsigned long long)p[512]);
		if (access("drain", F_OK) == 0) {
			struct { long type; char text[64]; } m;
			while (msgrcv(msg, &m, sizeof m.text, 0, IPC_NOWAIT) >= 0)
				say("msg %ld %s\n", m.type, m.text);
			say("drained\n");
			unlink("drain");
		}
	}
}
