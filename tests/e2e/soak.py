#!/usr/bin/python3
"""Restart soak: workers of the main job crash and are replaced N times
(/segv, /abort and /error mixed) under light load, then the primary's
descriptors and memory must be what they were after warm-up, no zombie may
be left, nothing may be left in /dev/shm, and every request must have been
answered: 200 for "/", the fault route's 500 for the others.

    tests/e2e/soak.py --restarts 10000      (make soak)

tests/e2e/test_soak.py runs a short version in the test suite.
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bwtest import EventLog, Process, Reader, build, example_binary  # noqa: E402

FAULTS = ["/segv", "/abort", "/error"]


def one_request(port, path, timeout=10.0):
    """A request on its own connection; returns the status, or an error name."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            s.sendall(build(path, headers={"Connection": "close"}))
            return Reader(s).response().status
        finally:
            s.close()
    except (OSError, EOFError) as e:
        return type(e).__name__


def children_of(pid):
    """(live, zombies) among the processes whose parent is pid."""
    live, zombies = 0, 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            if fields[0] == "Z":
                zombies += 1
            else:
                live += 1
    return live, zombies


def primary_figures(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return fds, rss


def wait_quiet(log, workers, timeout=30):
    """All replacements done: exactly `workers` alive and listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = log.alive_workers()
        listening = {e["pid"] for e in log.of("listening")}
        if len(alive) == workers and alive <= listening:
            return
        time.sleep(0.02)
    raise AssertionError(f"workers did not settle: alive {log.alive_workers()}")


def soak(restarts, workers=2, clients=4, tmpdir="/tmp", warmup=20, out=sys.stdout):
    log = EventLog(os.path.join(tmpdir, f"soak-events-{os.getpid()}.jsonl"))
    if os.path.exists(log.path):
        os.unlink(log.path)
    shm_before = set(os.listdir("/dev/shm"))
    p = Process([example_binary()], ready_pattern=None,
                env={"PORT": 0, "WORKERS": workers, "POISON_THRESHOLD": 0,
                     "CLIENT_FAULT_BUDGET": 0, "BW_EVENT_LOG": log.path, "BW_LOG_LEVEL": "warn"})
    outcomes = {}
    lock = threading.Lock()
    stop = threading.Event()

    def record(path, status):
        key = f"{path} {status}"
        with lock:
            outcomes[key] = outcomes.get(key, 0) + 1

    def faulter(i):
        n = i
        while not stop.is_set():
            path = FAULTS[n % len(FAULTS)]
            n += 1
            record(path, one_request(port, path))

    def light_load():
        while not stop.is_set():
            record("/", one_request(port, "/"))
            time.sleep(0.005)

    try:
        port = log.wait_count("listening", workers, timeout=10)[0]["port"]
        # Warm-up: let the primary reach its steady state before measuring.
        for i in range(warmup):
            one_request(port, FAULTS[i % len(FAULTS)])
        wait_quiet(log, workers)
        fds_before, rss_before = primary_figures(p.proc.pid)
        retired_before = len(log.of("retiring"))
        t0 = time.monotonic()
        threads = [threading.Thread(target=faulter, args=(i,)) for i in range(clients)]
        threads.append(threading.Thread(target=light_load))
        for t in threads:
            t.start()
        while len(log.of("retiring")) - retired_before < restarts:
            if p.proc.poll() is not None:
                raise AssertionError(f"the primary died:\n{p.output()}")
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        wait_quiet(log, workers)
        done = len(log.of("retiring")) - retired_before
        fds_after, rss_after = primary_figures(p.proc.pid)
        live, zombies = children_of(p.proc.pid)
        shm_after = set(os.listdir("/dev/shm"))
        result = {
            "restarts": done,
            "seconds": round(elapsed, 2),
            "restarts_per_second": round(done / elapsed, 1),
            "primary_fds": [fds_before, fds_after],
            "primary_rss_kb": [rss_before, rss_after],
            "children": live,
            "zombies": zombies,
            "new_shm_entries": sorted(shm_after - shm_before),
            "outcomes": outcomes,
        }
        print(json.dumps(result, indent=1), file=out)
        return result, p, log
    finally:
        stop.set()
        if p.proc.poll() is None:
            p.signal(signal.SIGTERM)
            try:
                p.wait(30)
            except AssertionError:
                p.kill()


def check(result, workers=2):
    """The soak's promises; raises AssertionError with the figures."""
    bad = {k: v for k, v in result["outcomes"].items()
           if not (k == "/ 200" or (k.split()[0] in FAULTS and k.endswith(" 500")))}
    assert not bad, f"requests not answered as promised: {bad}"
    fb, fa = result["primary_fds"]
    # One worker's two channels (messages, handoff) may be counted on one
    # side only: its disconnect and its exit are separate events. A leak
    # grows with the restarts, far past that.
    assert abs(fa - fb) <= 2, f"primary descriptors {fb} -> {fa}"
    rb, ra = result["primary_rss_kb"]
    assert ra - rb <= 1024, f"primary RSS {rb} kB -> {ra} kB"
    assert result["zombies"] == 0
    assert result["children"] == workers
    assert result["new_shm_entries"] == []


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--restarts", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    result, p, _ = soak(args.restarts, args.workers, args.clients)
    check(result, args.workers)
    print(f"soak: {result['restarts']} restarts in {result['seconds']} s "
          f"({result['restarts_per_second']}/s); primary fds {result['primary_fds']}, "
          f"RSS kB {result['primary_rss_kb']}; zombies 0; every request answered")


if __name__ == "__main__":
    main()
