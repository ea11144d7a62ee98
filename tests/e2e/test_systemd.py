"""N: the primary under a service manager: the sd_notify protocol (READY,
RELOADING with MONOTONIC_USEC, STOPPING, STATUS, WATCHDOG) read from a
datagram socket of the test's own, as systemd reads it (with the sender's
credentials: every message must come from the primary), and socket
activation through Debian's systemd-socket-activate.

The example server (examples/bulwark-server) exists in the plain build
only, hence @no_asan on each test.
"""
import os
import shutil
import signal
import subprocess
import time

from bwtest import (EventLog, NotifyListener, Process, example_binary, free_port, gone, kill_pid,
                    no_asan, request, stop_cluster, wait_until)


def only_from(primary_pid, messages):
    senders = {m[0] for m in messages}
    assert senders == {primary_pid}, f"senders {senders}, primary {primary_pid}: " \
                                     f"{[m[1] for m in messages]}"


@no_asan
def test_N_01_ready_reloading_stopping_in_order(cluster):
    n = NotifyListener()
    try:
        p, port, log = cluster(workers=2, NOTIFY_SOCKET=n.name)
        ready = n.wait_for("READY", "1")
        # READY=1 once every worker listens, and not before.
        assert len(log.of("listening")) == 2
        assert all("READY" not in m[1] for m in n.messages[:-1]), n.messages
        assert "2 workers serving (2 wanted)" in ready[1]["STATUS"], ready
        assert request(port).body == b"ok"

        # SIGHUP: RELOADING=1 stamped with CLOCK_MONOTONIC, then READY=1 once
        # the new generation serves and the old one is gone.
        before = time.monotonic_ns() // 1000
        p.signal(signal.SIGHUP)
        reloading = n.wait_for("RELOADING", "1")
        after = time.monotonic_ns() // 1000
        assert before <= int(reloading[1]["MONOTONIC_USEC"]) <= after, reloading
        assert reloading[1]["STATUS"].startswith("reloading:"), reloading
        ready = n.wait_for("READY", "1")
        assert len(log.of("listening")) == 4
        assert len(log.of("disconnect")) >= 2
        assert ready[1]["STATUS"].startswith("serving: 2 workers serving"), ready
        assert request(port).body == b"ok"

        # SIGTERM: STOPPING=1 at once; after it only STATUS lines.
        p.signal(signal.SIGTERM)
        n.wait_for("STOPPING", "1")
        stop_cluster(p)
        rest = n.drain(0.1)
        stop_at = next(i for i, m in enumerate(n.messages) if "STOPPING" in m[1])
        assert all(set(m[1]) == {"STATUS"} for m in n.messages[stop_at + 1:]), n.messages
        assert n.messages[-1][1]["STATUS"].startswith("stopping: 0 workers serving"), rest
        only_from(p.proc.pid, n.messages)
    finally:
        n.close()


def watched_cluster(tmp_path, n, watchdog_pid="$$", workers=1):
    """The example server with WATCHDOG_USEC=200000 and WATCHDOG_PID set by
    a shell that then execs it (so $$ is the primary's pid, as systemd
    sets it); returns (process, event log)."""
    log = EventLog(str(tmp_path / "events.jsonl"))
    env = {"PORT": 0, "WORKERS": workers, "BW_EVENT_LOG": log.path,
           "NOTIFY_SOCKET": n.name, "WATCHDOG_USEC": 200000}
    p = Process(["sh", "-c", f'WATCHDOG_PID={watchdog_pid} exec "{example_binary()}"'],
                env=env, ready_pattern=None)
    return p, log


@no_asan
def test_N_02_watchdog_pings_only_while_the_primary_turns(tmp_path):
    n = NotifyListener()
    try:
        p, log = watched_cluster(tmp_path, n)
        n.wait_for("READY", "1")
        # Half the interval: about 10 pings a second; at least 5 however busy
        # this machine is.
        window = []
        t_end = time.monotonic() + 1.0
        while (left := t_end - time.monotonic()) > 0:
            m = n.recv(left)
            if m is not None:
                window.append(m)
        pings = [m for m in window if m[1].get("WATCHDOG") == "1"]
        assert len(pings) >= 5, [m[1] for m in window]
        # A stopped primary (its loop does not turn) sends nothing, however
        # healthy its worker is; it pings again once it runs.
        p.signal(signal.SIGSTOP)
        n.drain(0.05)  # what was in flight before the stop
        assert n.recv(0.6) is None
        p.signal(signal.SIGCONT)
        n.wait_for("WATCHDOG", "1", timeout=2.0)
        stop_cluster(p)
        only_from(p.proc.pid, n.messages)
    finally:
        n.close()


@no_asan
def test_N_03_watchdog_of_another_pid_is_not_ours(tmp_path):
    # WATCHDOG_PID names the process the watchdog is for: another one's
    # (here pid 1) is not a request to this primary.
    n = NotifyListener()
    try:
        p, log = watched_cluster(tmp_path, n, watchdog_pid="1")
        n.wait_for("READY", "1")
        n.drain(0.5)
        assert not any("WATCHDOG" in m[1] for m in n.messages), n.messages
        stop_cluster(p)
    finally:
        n.close()


@no_asan
def test_N_04_socket_activation_by_systemd_socket_activate(tmp_path):
    # Debian's systemd-socket-activate listens, and on the first connection
    # execs the server with the socket as fd 3 (LISTEN_FDS=1, LISTEN_PID).
    # The connection that woke the service is served from the backlog, the
    # primary says READY=1, and a stop leaves the port to the activator's
    # socket (here: gone with it).
    tool = shutil.which("systemd-socket-activate")
    assert tool, "systemd-socket-activate missing: scripts/deps.sh test installs systemd"
    port = free_port()
    n = NotifyListener()
    log = EventLog(str(tmp_path / "events.jsonl"))
    p = Process([tool, "-l", f"127.0.0.1:{port}", "-E", "WORKERS=2", "-E", "PORT=1",
                 "-E", f"BW_EVENT_LOG={log.path}", "-E", f"NOTIFY_SOCKET={n.name}",
                 example_binary()], ready_pattern=None)
    try:
        p.wait_for(f"Listening on 127.0.0.1:{port}")
        r = request(port, "/", timeout=10)
        assert r.status == 200 and r.body == b"ok", r
        n.wait_for("READY", "1")
        assert {e["port"] for e in log.of("listening")} == {port}
        assert request(port).body == b"ok"
        p.signal(signal.SIGTERM)
        assert p.wait(20) == 0, p.output()
        only_from(p.proc.pid, n.messages)  # exec: the activator's pid is the primary's
    finally:
        p.kill()
        n.close()


# ---- The shipped units (contrib/systemd) ----------------------------------

UNITS = os.path.join(os.path.dirname(__file__), "..", "..", "contrib", "systemd")


def unit_values(name):
    """KEY -> [values] of a unit file's assignments (every section)."""
    values = {}
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", "[")) and "=" in line:
                k, v = line.split("=", 1)
                values.setdefault(k, []).append(v)
    return values


@no_asan
def test_N_05_shipped_units_verify(tmp_path):
    # systemd-analyze verify loads the units as systemd would (offline): a
    # typo in a directive, a bad value or a missing command fails it. The
    # ExecStart path is pointed at this build's server.
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze missing: scripts/deps.sh test installs systemd"
    for name in ("bulwark-server.service", "bulwark-server.socket"):
        with open(os.path.join(UNITS, name)) as f:
            text = f.read()
        (tmp_path / name).write_text(text.replace("/usr/bin/bulwark-server", example_binary()))
    out = subprocess.run([tool, "verify", "--man=no", str(tmp_path / "bulwark-server.socket"),
                          str(tmp_path / "bulwark-server.service")], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "" and out.stderr.strip() == "", out


@no_asan
def test_N_06_the_service_as_its_unit_says(tmp_path):
    # The unit's own values drive a real run: its socket (through
    # systemd-socket-activate), its Environment=, WATCHDOG_USEC from
    # WatchdogSec=, ExecStart's arguments; then what ExecReload= sends, the
    # documented upgrade signal, and KillSignal= to the main process, with
    # the stop finished within TimeoutStopSec=.
    svc, sock = unit_values("bulwark-server.service"), unit_values("bulwark-server.socket")
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    assert svc["KillMode"] == ["mixed"] and sock["ListenStream"]
    exec_args = svc["ExecStart"][0].split()[1:]
    watchdog_usec = int(svc["WatchdogSec"][0]) * 1000000
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    kill_signal = getattr(signal, svc["KillSignal"][0])
    stop_timeout = float(svc["TimeoutStopSec"][0])
    port = free_port()
    n = NotifyListener()
    log = EventLog(str(tmp_path / "events.jsonl"))
    env = [a for kv in svc.get("Environment", []) for a in ("-E", kv)]
    # WATCHDOG_PID as systemd sets it: the main process, the one that execs.
    argv = [shutil.which("systemd-socket-activate"), "-l", f"127.0.0.1:{port}", *env,
            "-E", f"BW_EVENT_LOG={log.path}", "-E", f"NOTIFY_SOCKET={n.name}",
            "-E", f"WATCHDOG_USEC={watchdog_usec}", "sh", "-c",
            f'WATCHDOG_PID=$$ exec "{example_binary()}" "$@"', "sh", *exec_args]
    p = Process(argv, ready_pattern=None)
    new_pid = None
    try:
        p.wait_for(f"Listening on 127.0.0.1:{port}")
        assert request(port, timeout=10).body == b"ok"  # wakes it, as a first client does
        n.wait_for("READY", "1")
        workers = int(exec_args[0].split("=")[1])
        assert len(log.of("listening")) == workers
        # Its first ping comes at start (then every WatchdogSec/2).
        assert any(m[1].get("WATCHDOG") == "1" and m[0] == p.proc.pid for m in n.messages)
        p.signal(signal.SIGHUP)  # ExecReload=
        n.wait_for("RELOADING", "1")
        n.wait_for("READY", "1")
        p.signal(signal.SIGUSR2)  # the upgrade (docs/DEPLOYMENT.md)
        handover = n.wait_for("MAINPID")
        new_pid = int(handover[1]["MAINPID"])
        assert handover[0] == p.proc.pid and handover[1].get("READY") == "1", handover
        assert p.proc.wait(20) == 0
        # The new main process pings the watchdog: WATCHDOG_PID names it.
        assert any(m[1].get("WATCHDOG") == "1" and m[0] == new_pid for m in n.messages), \
            n.messages
        assert request(port).body == b"ok"
        t0 = time.monotonic()
        os.kill(new_pid, kill_signal)  # KillMode=mixed: the main process only
        n.wait_for("STOPPING", "1")
        assert wait_until(lambda: gone(new_pid), stop_timeout)
        assert time.monotonic() - t0 < stop_timeout
        assert all(e["code"] == 0 for e in log.of("exit")), log.of("exit")
        new_pid = None
    finally:
        if new_pid is not None:
            kill_pid(new_pid)
        p.kill()
        n.close()
