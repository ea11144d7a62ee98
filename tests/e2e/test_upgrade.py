"""G: the binary upgrade (SIGUSR2, src/cluster_upgrade.c) against the main
job, examples/bulwark-server, copied to files of the test's own so that a
deploy can be played: the program runs from a symlink, the symlink is
pointed at another file, SIGUSR2 goes to the primary.

- G-01: under load (keep-alive clients that reuse their connections after
  random idle times, GET and POST; and fresh connections, one request
  each), the upgrade loses no request, answers every one right, and ends
  with the new file running as the primary. The service manager's view
  (a NOTIFY_SOCKET of the test's own): MAINPID= the new primary and READY=1,
  sent by the old one, which then says nothing more (no STOPPING=1: the
  service did not stop).
- G-02: an upgrade to a program that exits at once, to one whose workers
  crash-loop (the new primary gives up), and to one that never gets ready
  (killed at UPGRADE_TIMEOUT_MS): the old primary serves throughout, logs
  why, and a later upgrade to a good build still works.
"""
import os
import shutil
import signal
import threading
import time

from bwtest import (EventLog, NotifyListener, Process, example_binary, fresh_storm, gone, kill_pid,
                    listening_port, no_asan, request, wait_until)
from reuseload import ReuseLoad


class Deploy:
    """A directory with builds of the server and `current`, a symlink to one
    of them, which the primary runs (so SIGUSR2 execs whatever `current`
    names then, as after a deploy)."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.current = str(tmp_path / "current")

    def build(self, name, script=None):
        path = str(self.dir / name)
        if script is None:
            shutil.copy2(example_binary(), path)  # another file: another inode
        else:
            with open(path, "w") as f:
                f.write("#!/bin/sh\n" + script + "\n")
            os.chmod(path, 0o755)
        return path

    def point_at(self, path):
        tmp = self.current + ".new"
        os.symlink(path, tmp)
        os.replace(tmp, self.current)  # atomic, as a deploy tool does it

    def start(self, workers=2, env=None):
        log = EventLog(str(self.dir / "events.jsonl"))
        full = {"PORT": 0, "WORKERS": workers, "BW_EVENT_LOG": log.path, "POISON_THRESHOLD": 0}
        full.update(env or {})
        p = Process([self.current], env=full, ready_pattern=None)
        port = listening_port(log, workers)
        return p, port, log


def exe_of(pid):
    return os.path.realpath(f"/proc/{pid}/exe")


def stop_pid(pid, timeout=20.0):
    """SIGTERM to a primary this test did not start itself (the new one is
    the old one's child, reparented when it exited); wait until it is gone."""
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: gone(pid), timeout), \
        f"primary {pid} still alive {timeout}s after SIGTERM"


@no_asan
def test_G_01_upgrade_under_load_loses_nothing(tmp_path):
    d = Deploy(tmp_path)
    v1, v2 = d.build("v1"), d.build("v2")
    d.point_at(v1)
    n = NotifyListener()
    pid_file = tmp_path / "bulwark.pid"
    p, port, log = d.start(env={"NOTIFY_SOCKET": n.name, "PID_FILE": pid_file, "ADMIN_PORT": -1})
    admin = log.wait_count("admin", 1)[0]["port"]
    new_pid = None
    try:
        n.wait_for("READY", "1")
        assert exe_of(p.proc.pid) == v1
        reuse = ReuseLoad(port, duration=3.0)
        storm = {}
        loads = [threading.Thread(target=lambda: reuse.run(), daemon=True),
                 threading.Thread(target=lambda: storm.update(
                     fresh_storm(port, 8, 3.0, ["/"], 0.0)), daemon=True)]
        for t in loads:
            t.start()
        time.sleep(1.0)  # the upgrade falls in the middle of the load
        d.point_at(v2)
        t_usr2 = time.monotonic()
        p.signal(signal.SIGUSR2)
        ready = log.wait_count("upgrade_ready", 1, timeout=20)[0]
        new_pid = ready["successor"]
        # The old primary drains into the new one and exits 0. (Its process
        # only: the new primary shares its stdout, so the output stays open.)
        assert p.proc.wait(30) == 0, p.output()
        took = time.monotonic() - t_usr2
        for t in loads:
            t.join(30)
        t = reuse.t
        lost = t["lost_eof"] + t["lost_reset"] + t["first_lost"]
        assert lost == 0 and t["other"] == 0, reuse.summary()
        assert t["reused_ok"] > 100, reuse.summary()
        inn = storm["innocent"]
        assert set(inn) == {200} and inn[200] > 50 and storm["connect_failures"] == 0, storm
        # The new file runs, as the only primary, with its own workers.
        assert exe_of(new_pid) == v2
        assert pid_file.read_text() == f"{new_pid}\n"  # written at the handover
        # The admin listener's socket went along: the same port, the new
        # primary's answers (the old one's counts are not in them).
        assert [e["port"] for e in log.of("admin")] == [admin, admin]
        assert request(admin, "/readyz").status == 200
        forked = {e["pid"] for e in log.of("fork")}
        listening = [e for e in log.of("listening")]
        assert len(listening) >= 4 and len(forked) >= 4
        assert request(port).body == b"ok"
        # systemd's view: MAINPID and READY from the old primary, then nothing
        # from it; the new one speaks from then on.
        handover = n.wait_for("MAINPID", str(new_pid))
        assert handover[0] == p.proc.pid and handover[1].get("READY") == "1", handover
        after = n.messages[n.messages.index(handover) + 1:] + n.drain(0.2)
        assert all(m[0] == new_pid for m in after), after
        assert not any("STOPPING" in m[1] for m in n.messages), n.messages
        begun = log.of("upgrade")[0]["mono_ns"]
        print(f"G-01: SIGUSR2 to the new primary's READY {(ready['mono_ns'] - begun) / 1e6:.1f} ms, "
              f"to the old primary gone {took:.2f}s; {reuse.summary()}; "
              f"fresh connections {storm}")
        stop_pid(new_pid)
        new_pid = None
    finally:
        if new_pid is not None:
            kill_pid(new_pid)
        p.kill()
        n.close()


@no_asan
def test_G_02_failed_upgrades_leave_the_old_primary_serving(tmp_path):
    d = Deploy(tmp_path)
    v1 = d.build("v1")
    d.point_at(v1)
    crash_flag = str(tmp_path / "workers-crash")
    pid_file = tmp_path / "bulwark.pid"
    p, port, log = d.start(env={"UPGRADE_TIMEOUT_MS": 3000, "FAIL_AT_START_IF": crash_flag,
                                "PID_FILE": pid_file,
                                "RESTART_INTENSITY": 2})
    new_pid = None
    try:
        cases = [
            ("exits at once", d.build("dies", "exit 3"), "exited with status 3 before it was ready"),
            ("never ready", d.build("hangs", "exec sleep 60"), "was not ready within 3000 ms"),
            ("workers crash-loop", v1, "exited with status 2 before it was ready"),
        ]
        for i, (what, build, why) in enumerate(cases):
            if what == "workers crash-loop":
                open(crash_flag, "w").close()  # the new primary's workers fault at start
            d.point_at(build)
            p.signal(signal.SIGUSR2)
            failed = log.wait_count("upgrade_failed", i + 1, timeout=20)[i]
            assert why in failed["why"], (what, failed)
            assert p.wait_count(why, 1, timeout=5), p.output()
            # Served all along, by the old primary's workers.
            assert request(port).body == b"ok", what
            assert p.proc.poll() is None, what
            assert pid_file.read_text() == f"{p.proc.pid}\n", what  # still the old one's
            if os.path.exists(crash_flag):
                os.unlink(crash_flag)
        # A good build afterwards: the upgrade goes through.
        v2 = d.build("v2")
        d.point_at(v2)
        p.signal(signal.SIGUSR2)
        new_pid = log.wait_count("upgrade_ready", 1, timeout=20)[0]["successor"]
        assert p.proc.wait(30) == 0, p.output()
        assert exe_of(new_pid) == v2
        assert pid_file.read_text() == f"{new_pid}\n"
        assert request(port).body == b"ok"
        stop_pid(new_pid)
        new_pid = None
    finally:
        if new_pid is not None:
            kill_pid(new_pid)
        p.kill()


@no_asan
def test_G_03_a_stop_during_an_upgrade_stops_the_new_primary_too(tmp_path):
    # SIGTERM to the old primary while its successor is still starting (a
    # build that takes a second to come up): the service is stopping, so
    # the new primary is told to stop too (SIGTERM) and nothing is left
    # running; the old one drains and exits 0, saying why.
    d = Deploy(tmp_path)
    v1 = d.build("v1")
    d.point_at(v1)
    p, port, log = d.start()
    slow_start = d.build("v2-slow", f'sleep 1\nexec "{v1}" "$@"')
    d.point_at(slow_start)
    p.signal(signal.SIGUSR2)
    new_pid = log.wait_count("upgrade", 1)[0]["successor"]
    try:
        p.signal(signal.SIGTERM)
        assert p.proc.wait(20) == 0, p.output()
        assert wait_until(lambda: gone(new_pid), 10), \
            f"the new primary {new_pid} outlived the stop"
        assert p.wait_count("the service is stopping: the new primary", 1), p.output()
        assert log.of("upgrade_ready") == []
    finally:
        p.kill()  # the group: the new primary and its workers too, if any is left
        kill_pid(new_pid)
