"""Issue 15, part 3: recycling and limits, against the main job,
examples/bulwark-server: a real primary and workers, real clients on
loopback.

Each test is named M-NN:

- M-01: MAX_REQUESTS=100 with MAX_REQUESTS_JITTER=100 under load for 2 s:
  40 keep-alive clients (GET, POST, /slow, idling 0-200 ms between
  requests: tests/e2e/test_handoff.py's ReuseLoad) and a stream of fresh
  connections (GET and POST, Connection: close). Workers are recycled
  (event "recycle", reason max_requests), each replaced first, and not one
  request is lost or answered wrongly; every recycled worker exits 0 after
  its disconnect; two workers remain. The jitter: each worker's threshold
  (its fork event's max_requests) lies in 100..200, and they differ.
- M-02: MAX_MEMORY_MB=32, one worker: /hog?mb=48 makes it resident past
  the limit; three /slow requests in flight on it are answered after the
  primary recycled it (event reason max_memory, with the RSS and limit in
  the event and the log line), the connection of the /hog is handed to the
  replacement, and the old worker exits 0 after its disconnect.
- M-03: RUN_AS_USER=bulwark-test (created with useradd if missing; root
  only): every worker's real, effective, saved and filesystem uid and gid
  are the user's, its supplementary groups the user's; the primary is
  still root; requests are served. Then --user by uid and --group by name.
- M-04: a primary that is not root asked to run its workers as another
  user: each worker logs why and exits 77 (BW_EXIT_PRIVILEGES) before it
  listens; the primary gives up past its restart intensity, exit status 2,
  its log saying that the workers could not drop their privileges.
- M-05: the root policy: as root with no user, ALLOW_ROOT=0 refuses to
  start (exit 1, a message naming --user and --allow-root, nothing
  forked); unset, the workers run as root with a warning in the log;
  ALLOW_ROOT=1, without the warning; RUN_AS_GROUP alone, root workers in
  that group only, with the warning.
- M-06: PID_FILE: a stale pid file (another pid) is replaced by the
  primary's pid once it listens, and removed at a clean exit; a pid file
  someone else rewrote meanwhile is left alone.
"""
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

from bwtest import (EventLog, Process, Reader, build, connect, example_binary, no_asan,
                    request, stop_cluster, wait_until)
from test_handoff import Cadence, ReuseLoad, assert_nothing_lost

TEST_USER = "bulwark-test"


def fresh_requests(port, every, duration):
    """A fresh connection every `every` seconds, GET and POST in turn, each
    with Connection: close; the outcomes tallied ("ok" or what went wrong)."""
    tally = {"ok": 0, "bad": []}
    lock = threading.Lock()

    def fire(i):
        if i % 2:
            path, method, body = f"/?fresh={i}", "POST", b"p%d=" % i + b"y" * (i % 100)
        else:
            path, method, body = f"/?fresh={i}", "GET", b""
        try:
            r = request(port, path, method=method, body=body,
                        headers={"Connection": "close"}, timeout=5.0)
            good = (r.status, r.body) == (200, b"ok")
            what = None if good else f"{method} {r.status} {r.body[:40]!r}"
        except Exception as e:  # noqa: BLE001 - a lost request, reported
            what = f"{method} {e!r}"
        with lock:
            if what is None:
                tally["ok"] += 1
            else:
                tally["bad"].append(what)

    cad = Cadence(every, fire, duration)
    cad.tally = tally
    return cad


def stop_and_forget(p, log):
    """stop_cluster, then remove the event log: the next cluster of the same
    test writes a new one (the fixture's path), read from its first line."""
    stop_cluster(p)
    os.unlink(log.path)


def exits_of(log, pids):
    return [e for e in log.of("exit") if e["pid"] in pids]


@no_asan  # the example server has no ASan build: one run
def test_M_01_max_requests_recycles_under_load_and_loses_nothing(cluster):
    """M-01: recycling by request count under keep-alive and fresh-connection
    load: nothing lost, every recycled worker replaced first and gone
    cleanly, the thresholds jittered."""
    p, port, log = cluster(workers=2, MAX_REQUESTS=100, MAX_REQUESTS_JITTER=100)
    fresh = fresh_requests(port, 0.01, 2.0)
    # Rolling restarts meanwhile (SIGHUP at 0.7 and 1.4 s): one that
    # begins during a recycling takes it over, and the cluster still ends
    # with two workers, not one too many.
    hups = Cadence(0.7, lambda i: i and p.signal(signal.SIGHUP), 2.0)
    load = ReuseLoad(port, 2.0)
    fresh.start()
    hups.start()
    try:
        load.run()
    finally:
        fresh.stop()
        hups.stop()
    recycles = log.of("recycle")
    forks = log.of("fork")
    extra = (f"fresh connections: {fresh.tally['ok']} ok, lost or wrong "
             f"{fresh.tally['bad'][:5]} ({len(fresh.tally['bad'])}); {len(recycles)} recycles, "
             f"{len(forks)} forks; thresholds {[f.get('max_requests') for f in forks]}; "
             f"SIGHUPs {hups.calls - 1}")
    print(extra)
    assert_nothing_lost(load, log, extra)
    assert fresh.tally["ok"] >= 100 and not fresh.tally["bad"], extra
    assert len(recycles) >= 3, extra
    for r in recycles:
        assert r["reason"] == "max_requests" and r["requests"] >= r["threshold"], r
    # Each worker's own threshold, drawn in 100..200: spread, not one value.
    thresholds = [f["max_requests"] for f in forks]
    assert all(100 <= t <= 200 for t in thresholds), thresholds
    assert len(set(thresholds)) >= 2, thresholds
    by_pid = {f["pid"]: f["max_requests"] for f in forks}
    for r in recycles:
        assert r["threshold"] == by_pid[r["pid"]], (r, by_pid)
    # Every recycled worker drains and exits 0 after its disconnect, and the
    # cluster is back to two workers (a replacement per recycled one, no more).
    recycled = {r["pid"] for r in recycles}
    assert wait_until(lambda: recycled <= {e["pid"] for e in log.of("exit")}, 10), \
        (recycled, log.of("exit"))
    for e in exits_of(log, recycled):
        assert (e["code"], e["signal"], e["after_disconnect"]) == (0, 0, True), e
    assert wait_until(lambda: len(log.alive_workers()) == 2, 10), log.events()[-8:]
    stop_cluster(p)
    # (A recycling the last requests started after the load counts too.)
    assert p.count("INFO: cluster: recycling worker") == len(log.of("recycle")), p.output()


@no_asan
def test_M_02_memory_limit_recycles_gracefully(cluster):
    """M-02: a worker past MAX_MEMORY_MB is recycled within about a second,
    its replacement listening first; its requests in flight are answered,
    its idle connection moves to the replacement."""
    p, port, log = cluster(workers=1, MAX_MEMORY_MB=32)
    old = log.of("listening")[0]["pid"]
    hog = connect(port)
    hog.sendall(build("/hog?mb=48"))
    reader = Reader(hog)
    r = reader.response()
    assert (r.status, r.body) == (200, b"kept 48 MiB\n"), r
    # Three requests in flight on the old worker while it is recycled.
    slow = [connect(port) for _ in range(3)]
    for s in slow:
        s.sendall(build("/slow?ms=2000"))
    sent_ns = time.monotonic_ns()
    recycle = log.wait_count("recycle", 1, timeout=5)[0]
    assert recycle["pid"] == old and recycle["reason"] == "max_memory", recycle
    assert recycle["rss_kb"] > recycle["limit_kb"] == 32 * 1024, recycle
    log.wait_count("listening", 2, timeout=5)
    for s in slow:
        r = Reader(s).response()
        assert (r.status, r.body) == (200, b"slow ok\n"), r
        s.close()
    # They were in flight when the recycling began: before their 2 s were up
    # (the event log's clock is CLOCK_MONOTONIC, as Python's).
    assert recycle["mono_ns"] < sent_ns + 2_000_000_000, (recycle, sent_ns)
    # The old worker drains and exits cleanly; the /hog connection was
    # handed to the replacement, which answers on it.
    assert wait_until(lambda: exits_of(log, {old}), 10), log.events()
    e = exits_of(log, {old})[0]
    assert (e["code"], e["signal"], e["after_disconnect"]) == (0, 0, True), e
    new = [x["pid"] for x in log.of("listening") if x["pid"] != old][0]
    hog.sendall(build("/pid"))
    r = reader.response()
    assert (r.status, r.body) == (200, b"%d\n" % new), (r, new)
    hog.close()
    line = p.wait_for("recycling worker 1")
    assert "resident memory" in line and "limit of 32 MiB" in line, line
    stop_cluster(p)


def ensure_test_user():
    if os.geteuid() != 0:
        pytest.skip("needs root: the primary must be root to run workers as another user")
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", TEST_USER], check=True, capture_output=True,
                       timeout=30)
        return pwd.getpwnam(TEST_USER)


def status_ids(pid):
    """The Uid:, Gid: (real, effective, saved, filesystem) and Groups:
    lines of /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(v) for v in value.split()]
    return out


def check_workers_run_as(log, p, uid, gid, groups):
    pids = [e["pid"] for e in log.of("listening")]
    assert len(pids) == 2, log.events()
    for pid in pids:
        ids = status_ids(pid)
        assert ids["Uid"] == [uid] * 4 and ids["Gid"] == [gid] * 4, (pid, ids)
        assert sorted(ids["Groups"]) == sorted(groups), (pid, ids, groups)
    assert status_ids(p.proc.pid)["Uid"] == [0] * 4  # the primary keeps root


@no_asan
def test_M_03_workers_drop_to_the_configured_user(cluster):
    """M-03: RUN_AS_USER: the workers' ids and groups are the user's, the
    primary stays root, requests are served; --user by uid with --group by
    name works the same."""
    pw = ensure_test_user()
    p, port, log = cluster(workers=2, RUN_AS_USER=TEST_USER)
    groups = set(os.getgrouplist(TEST_USER, pw.pw_gid))
    check_workers_run_as(log, p, pw.pw_uid, pw.pw_gid, groups)
    for _ in range(4):
        r = request(port, "/")
        assert (r.status, r.body) == (200, b"ok"), r
    p.wait_for(f"workers run as user {TEST_USER} (uid {pw.pw_uid})")
    stop_and_forget(p, log)
    assert "WARN: cluster: workers run as root" not in p.output()

    other = grp.getgrnam("nogroup")
    p, port, log = cluster(workers=2, RUN_AS_USER=str(pw.pw_uid), RUN_AS_GROUP="nogroup")
    # An explicit group is the primary one; the user's other groups stay.
    groups = (set(os.getgrouplist(TEST_USER, other.gr_gid)))
    check_workers_run_as(log, p, pw.pw_uid, other.gr_gid, groups)
    r = request(port, "/")
    assert (r.status, r.body) == (200, b"ok"), r
    stop_cluster(p)


@no_asan
def test_M_04_a_failed_drop_ends_the_worker_and_the_primary_gives_up():
    """M-04: an unprivileged primary told to run its workers as another user:
    each worker says why and exits 77 before listening; the primary gives
    up (status 2) and says the workers could not drop their privileges."""
    pw = ensure_test_user()
    # The primary runs as the test user (setpriv), asked for workers as nobody.
    # Its event log in a directory it may write to, with its binary.
    where = tempfile.mkdtemp(prefix="bw-m04-")
    os.chmod(where, 0o777)
    log = EventLog(os.path.join(where, "events.jsonl"))
    env = {"PORT": 0, "WORKERS": 1, "RUN_AS_USER": "nobody", "RESTART_INTENSITY": 2,
           "RESTART_PERIOD_MS": 60000, "BW_EVENT_LOG": log.path}
    # A copy of the binary there too: the build tree may be in a directory
    # the test user cannot enter (a checkout under /root).
    exe = os.path.join(where, "bulwark-server")
    shutil.copy(example_binary(), exe)
    os.chmod(exe, 0o755)
    p = Process(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
                 exe], env=env, ready_pattern=None)
    try:
        code = p.wait(20)
        out = p.output()
        assert code == 2, out
        fails = [l for l in out.splitlines() if "FATAL: worker" in l]
        assert len(fails) == 3, out
        assert all("cannot drop privileges to user nobody (uid 65534" in l and "setgroups" in l
                   and "exiting with status 77" in l for l in fails), out
        assert [e["code"] for e in log.of("exit")] == [77] * 3, log.events()
        assert log.of("listening") == [], log.events()
        # The primary's own lines say why (the worker told it before exiting).
        why = "it reported: cannot drop privileges to user nobody: setgroups"
        restarts = [l for l in out.splitlines() if "died before listening" in l and "restarting in" in l]
        assert len(restarts) == 2 and all(why in l for l in restarts), out
        assert p.count("giving up") == 1 and why in p.wait_for("giving up"), out
    finally:
        p.kill()
        for f in os.listdir(where):
            os.unlink(os.path.join(where, f))
        os.rmdir(where)


@no_asan
def test_M_05_root_workers_without_a_user_refused_warned_or_allowed(cluster, tmp_path):
    """M-05: the root policy of bulwark-server as root without a user:
    ALLOW_ROOT=0 refuses, unset warns, ALLOW_ROOT=1 allows silently."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the policy is about a primary running as root")
    log = EventLog(str(tmp_path / "refused.jsonl"))
    r = subprocess.run([example_binary(), "--port=0"], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "ALLOW_ROOT": "0",
                                        "BW_EVENT_LOG": log.path})
    assert r.returncode == 1, r
    assert "refusing to run the workers as root" in r.stderr, r.stderr
    assert "--user=NAME" in r.stderr and "--allow-root=1" in r.stderr, r.stderr
    assert log.of("fork") == []

    p, port, log = cluster(workers=1)
    p.wait_for("WARN: cluster: workers run as root")
    assert request(port, "/").status == 200
    stop_and_forget(p, log)
    p, port, log = cluster(workers=1, ALLOW_ROOT=1)
    assert request(port, "/").status == 200
    stop_and_forget(p, log)
    assert "workers run as root" not in p.output(), p.output()
    # A group alone: root workers still (the warning), in that group only.
    nogroup = grp.getgrnam("nogroup").gr_gid
    p, port, log = cluster(workers=1, RUN_AS_GROUP="nogroup")
    p.wait_for("WARN: cluster: workers run as root")
    ids = status_ids(log.of("listening")[0]["pid"])
    assert (ids["Uid"], ids["Gid"], ids["Groups"]) == ([0] * 4, [nogroup] * 4, [nogroup]), ids
    assert request(port, "/").status == 200
    stop_cluster(p)


@no_asan
def test_M_06_pid_file_written_replaced_and_removed(cluster, tmp_path):
    """M-06: PID_FILE holds the primary's pid once it listens, a stale one
    replaced; removed at a clean exit, unless it no longer holds ours."""
    path = tmp_path / "bulwark.pid"
    path.write_text("999999\n")  # stale: another (dead) process's
    p, port, log = cluster(workers=1, PID_FILE=str(path))
    assert path.read_text() == f"{p.proc.pid}\n"
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
    stop_and_forget(p, log)
    assert not path.exists()

    p, port, _ = cluster(workers=1, PID_FILE=str(path))
    assert path.read_text() == f"{p.proc.pid}\n"
    path.write_text("12345\n")  # a successor's, say
    stop_cluster(p)
    assert path.read_text() == "12345\n"
