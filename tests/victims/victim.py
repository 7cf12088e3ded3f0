#!/usr/bin/env python3
"""victim.py: a python3 victim for round-trip tests.

Three threads each count in steps of one every 10 ms and print, every 10
steps, "pyI N n=COUNT ok=1 total=T"; ok says the thread's own counter and
a per-thread dict still agree, total is the shared counter (updated under
a lock). The main thread prints "main N total=T sumok=1" every 200 ms,
sumok saying the shared counter equals the sum of the threads' counts.
"""

import os
import sys
import threading
import time

lock = threading.Lock()
counts = [0, 0, 0]
total = 0
out = threading.Lock()


def say(line):
    with out:
        os.write(1, (line + "\n").encode())


def worker(i):
    global total
    mine = {"id": i, "data": [i * 1000 + k for k in range(1000)]}
    n = 0
    lines = 0
    while True:
        time.sleep(0.01)
        n += 1
        with lock:
            counts[i] += 1
            total += 1
            t = total
            same = counts[i] == n
        if n % 10:
            continue
        lines += 1
        ok = same and mine["id"] == i and mine["data"] == [i * 1000 + k for k in range(1000)]
        say("py%d %d n=%d ok=%d total=%d" % (i, lines, n, int(ok), t))


def main():
    say("start 0 pid=%d" % os.getpid())
    for i in range(3):
        threading.Thread(target=worker, args=(i,), daemon=True).start()
    lines = 0
    while True:
        time.sleep(0.2)
        lines += 1
        with lock:
            t = total
            s = sum(counts)
        say("main %d total=%d sumok=%d" % (lines, t, int(s == t)))


if __name__ == "__main__":
    main()
