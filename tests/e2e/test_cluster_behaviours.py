"""The cluster against the C behaviours of docs/BEHAVIOURS.md
(sections 14-18, C-01 ... C-47, and their C adaptation notes), plus the
cluster halves of D-19 and D-81.

Each test runs tests/e2e/cluster_test_app with one scenario: a real primary
(a bw_cluster on its own loop, listening on 127.0.0.1 port 0) and real
forked workers. The primary prints one line per event,

    event NAME id=1 pid=123 state=listening connected=1 dead=0 ead=unset
          code=-1 signal=0 workers=1 listed=1 alive=1 [address=...] [data=...]

(ead: exitedAfterDisconnect; workers: the number of workers listed at that
moment; listed: whether this worker is one of them; alive: whether its pid
still exists), and workers print lines beginning "worker ID". Readiness is
always a printed line awaited with a deadline. Most scenarios end by
themselves: the primary closes the cluster and its loop (under ASan: no leak,
no handle left) and exits 0.

Where bulwark differs from Node on purpose, the test says so and checks
bulwark's documented behaviour (include/bulwark/cluster.h).

Not applicable, with no test:
- C-10 (a process-level `error` re-emitted on the worker object): C has no
  process-level error emitter; errors in a worker go to its domains and to
  bw_on_uncaught, which C-43 and D-81 cover.
- C-12 [ext] primary settings (exec, args, cwd, silent, `setup` events):
  workers are forked from the primary's image, never exec'd, so there is
  nothing to set up; bw_cluster_options are fixed at bw_cluster_new.
- C-46 [ext] ref/unref of the channel and of round-robin handles: the
  channel has no ref/unref in the API; a worker's loop ends when its servers
  and its channel are closed (C-26 shows the loop rules).
- C-47 [ext] round-robin distribution: bulwark shares the listening socket
  (the kernel hands connections to the workers that accept), as the C notes
  allow; the primary never accepts.
"""
import errno
import os
import re
import signal
import socket
import time

import pytest

from bwtest import Process, Reader, binary, build, connect, no_asan, request, wait_until

DEADLINE = 15.0  # per wait; generous for the ASan build


@pytest.fixture
def app():
    started = []

    def start(scenario, **env):
        p = Process([binary("cluster_test_app"), scenario], env=env, ready_pattern=None)
        started.append(p)
        return p

    yield start
    for p in started:
        # The primary leads its own process group (a new session): whatever
        # is left of it and of its workers goes, by group id, never by name.
        try:
            os.killpg(p.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.kill()


# ---- Reading the output ---------------------------------------------------

def parse_event(line):
    head, _, data = line.partition(" data=")
    parts = head.split()
    ev = {"event": parts[1]}
    for kv in parts[2:]:
        k, _, v = kv.partition("=")
        ev[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
    if data:
        ev["data"] = data
    return ev


def events(p, name=None, wid=None):
    out = [parse_event(l) for l in p.output().splitlines() if l.startswith("event ")]
    return [e for e in out if (name is None or e["event"] == name) and
            (wid is None or e["id"] == wid)]


def lines(p, pattern):
    return [l for l in p.output().splitlines() if pattern in l]


def index_of(p, pattern):
    for i, l in enumerate(p.output().splitlines()):
        if pattern in l:
            return i
    raise AssertionError(f"no line with {pattern!r}:\n{p.output()}")


def wait_event(p, name, n=1, wid=None):
    pattern = f"event {name} " + (f"id={wid} " if wid is not None else "")
    assert p.wait_count(pattern, n, DEADLINE), f"{n} x {pattern!r} expected:\n{p.output()}"
    return events(p, name, wid)


def primary_port(p):
    return int(p.wait_for("primary pid=", DEADLINE).split("port=")[1].split()[0])


def ends_cleanly(p, code=0):
    """The primary ends by itself with `code`; for 0, after closing the
    cluster and its loop."""
    got = p.wait(DEADLINE)
    assert got == code, f"primary exit status {got}, expected {code}:\n{p.output()}"
    if code == 0:
        assert lines(p, "primary done closed=1 exit_status=0 loop-close=0"), p.output()


def gone(pid):
    """The pid no longer runs (a zombie left to an init that does not reap
    counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def once_each(p, name, ids):
    for i in ids:
        assert len(events(p, name, i)) == 1, f"{name} of worker {i}:\n{p.output()}"


# ---- 14. fork, online, listening, messages ------------------------------------

def test_C_01_worker_ids_and_environment(app):
    # bulwark forks without exec: the id reaches the worker through memory,
    # never through the environment, so there is no variable to remove and
    # nothing for a program the worker spawns to mistake for it. Checked: the
    # ids, the list, the worker's environment equal to the primary's (a
    # hash), a program spawned with uv_spawn that is not a worker, and none
    # of the primary's descriptors (other workers' channels, a file it holds)
    # left in a worker. The primary spawns the same program: the cluster
    # reaps its workers only, so the primary's own child is not taken from it.
    p = app("basic")
    ends_cleanly(p)
    forked = [l for l in p.output().splitlines() if l.startswith("forked ")]
    assert [re.search(r"id=(\d+)", l).group(1) for l in forked] == ["1", "2"]
    assert "workers=1 listed=1" in forked[0] and "workers=2 listed=1" in forked[1]
    env = p.wait_for("primary env=").split("env=")[1].split()[0]
    assert "is_worker=0" in p.wait_for("primary env=")
    for wid in (1, 2):
        me = p.wait_for(f"worker {wid} is_worker=")
        assert f"is_worker=1 connected=1 env={env}" in me
        # Its own two channels (messages, connection handoff), no sibling's.
        assert lines(p, f"worker {wid} channels=2 marker-open=0"), p.output()
        assert lines(p, f"worker {wid} probe exited status=0 signal=0"), p.output()
    probes = lines(p, "probe pid=")
    assert len(probes) == 3 and all(f"is_worker=0 env={env}" in l for l in probes), probes
    assert lines(p, "primary probe exited status=0 signal=0"), p.output()


def test_C_02_events_in_order(app):
    # bulwark emits `disconnect` too, between listening and exit (C-16 says
    # every ending has one); the rule's four events keep their order.
    p = app("kill-on-listening")
    ends_cleanly(p)
    evs = events(p, wid=1)
    assert [e["event"] for e in evs] == ["fork", "online", "listening", "disconnect", "exit"]
    state = {e["event"]: e["state"] for e in evs}
    assert (state["fork"], state["online"], state["listening"], state["exit"]) == \
        ("none", "online", "listening", "dead")


def test_C_03_event_arguments(app):
    # The C event is one struct: `online` carries only the worker;
    # `listening` the address, family and port (there is no fd field in C:
    # the socket is the primary's); `exit` the code and the signal, "none"
    # being -1 and 0.
    p = app("kill-on-listening")
    port = primary_port(p)
    ends_cleanly(p)
    (ls,) = events(p, "listening", 1)
    assert (ls["address"], ls["family"], ls["port"]) == ("127.0.0.1", 4, port)
    assert 1 <= ls["port"] <= 65535
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (-1, signal.SIGTERM) and ex["alive"] == 0
    (on,) = events(p, "online", 1)
    assert "address" not in on and on["code"] == -1 and on["signal"] == 0


def test_C_04_listening_reports_the_real_port(app):
    p = app("client-open")
    port = primary_port(p)
    wait_event(p, "listening", 2)
    assert all(e["port"] == port != 0 for e in events(p, "listening"))
    r = request(port, "/")
    assert r.status == 200 and r.body in (b"echo 1", b"echo 2")
    p.signal(signal.SIGUSR1)
    ends_cleanly(p)


def test_C_05_listening_once_per_server(app):
    p = app("two-servers")
    ends_cleanly(p)
    for wid in (1, 2):
        assert len(events(p, "listening", wid)) == 2, p.output()


def test_C_06_fork_env_overrides_for_that_worker(app):
    p = app("fork-env", X="old")
    ends_cleanly(p)
    assert lines(p, "worker 1 X=new Y=custom"), p.output()
    assert lines(p, "worker 2 X=old Y=(unset)"), p.output()
    assert lines(p, "primary X=old Y=(unset)"), p.output()


def test_C_07_fork_event_is_asynchronous(app):
    # The callback is added only after bw_cluster_fork returned.
    p = app("fork-async")
    ends_cleanly(p)
    assert lines(p, "primary fork returned fork-events=0"), p.output()
    assert len(events(p, "fork")) == 1
    assert index_of(p, "primary listener added") < index_of(p, "event fork ")


def test_C_08_primary_to_worker_message(app):
    # One delivery path in C: the worker's message callback (there is no
    # separate process-level and worker-object event to compare).
    p = app("messages")
    ends_cleanly(p)
    assert lines(p, "primary send rc=0"), p.output()
    assert lines(p, "worker 1 got message data=echo:hello-from-primary"), p.output()


def test_C_09_worker_to_primary_message(app):
    p = app("messages")
    ends_cleanly(p)
    (m,) = events(p, "message", 1)
    assert m["data"] == "reply:hello-from-primary"


def test_C_11_malformed_messages_are_ignored(app):
    # Both ways: an empty packet, unknown types, `listening` without its
    # fields, an oversized packet, an ack nobody waits for, quarantines with
    # no TTL or no route. The worker keeps serving, answers a message, and
    # exits 0 after a disconnect.
    p = app("bogus")
    port = primary_port(p)
    wait_event(p, "message", 1, wid=1)
    assert events(p, "message", 1)[0]["data"] == "pong"
    assert len(lines(p, "primary sent bogus frame")) == 7
    assert len(lines(p, "worker 1 sent bogus frame")) == 7
    assert len(events(p, "listening", 1)) == 1 and events(p, "disconnect") == []
    r = request(port, "/")
    assert r.status == 200 and r.body == b"echo 1"
    p.signal(signal.SIGUSR1)
    ends_cleanly(p)
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["ead"]) == (0, 0, "yes")
    assert len(events(p, "disconnect", 1)) == 1


def test_C_13_fresh_worker(app):
    # There is no worker constructor in the C API: the freshest worker is
    # the one bw_cluster_fork returns. It has its id (1, not Node's 0 of an
    # unattached object) and a process, state none, ead unset.
    p = app("basic")
    ends_cleanly(p)
    first = p.wait_for("forked id=1 ")
    assert "state=none connected=1 dead=0 ead=unset" in first
    assert int(re.search(r"pid=(\d+)", first).group(1)) > 0


def test_C_14_is_connected(app):
    # Worker 1 is disconnected by the primary, worker 2 disconnects itself.
    p = app("connected")
    ends_cleanly(p)
    for wid in (1, 2):
        assert "connected=1" in p.wait_for(f"forked id={wid} ")
        assert "connected=1" in p.wait_for(f"worker {wid} starts ")
        (d,) = events(p, "disconnect", wid)
        assert d["connected"] == 0
        assert lines(p, f"worker {wid} disconnect-cb connected=0"), p.output()


def test_C_15_is_dead(app):
    # In the worker there is nothing to ask: a running process is not dead.
    p = app("kill-on-listening")
    ends_cleanly(p)
    assert "dead=0" in p.wait_for("forked id=1 ")
    assert all(e["dead"] == 0 for e in events(p, wid=1) if e["event"] != "exit")
    assert events(p, "exit", 1)[0]["dead"] == 1


# ---- 15. exit, kill, destroy ------------------------------------------------

def test_C_16_worker_exits_by_itself(app):
    # bulwark always emits disconnect before exit: when the exit is reaped
    # before the channel's end is read, the disconnect is emitted first from
    # the exit (the rule allows either order; each comes once).
    p = app("exit-self")
    ends_cleanly(p)
    (d,) = events(p, "disconnect", 1)
    assert (d["state"], d["ead"]) == ("disconnected", "no")
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["alive"], ex["state"]) == (42, 0, 0, "dead")


def test_C_17_worker_killed_through_its_process(app):
    """C-17: a worker killed through its process is reported dead, with its signal."""
    p = app("external-kill")
    (ls,) = wait_event(p, "listening", 1)
    os.kill(ls["pid"], signal.SIGKILL)
    ends_cleanly(p)
    (d,) = events(p, "disconnect", 1)
    assert (d["state"], d["ead"]) == ("disconnected", "no")
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["alive"]) == (-1, signal.SIGKILL, 0)


def test_C_18_kill_from_the_primary(app):
    p = app("primary-kill")
    ends_cleanly(p)
    assert lines(p, "primary kill rc=0"), p.output()
    (d,) = events(p, "disconnect", 1)
    assert (d["state"], d["ead"]) == ("disconnected", "no")
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["alive"]) == (-1, signal.SIGKILL, 0)
    assert (ex["workers"], ex["listed"]) == (0, 0), "the exit handler still sees the worker"


def test_C_19_default_kill_ends_a_busy_loop(app):
    p = app("busy")
    ends_cleanly(p)
    assert lines(p, "worker 1 busy forever"), p.output()
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (-1, signal.SIGTERM)


def test_C_20_workers_die_with_a_crashing_primary(app):
    # The primary throws, uncaught, from an event callback once both workers
    # listen: exit 1 (BW_EXIT_UNCAUGHT), and the workers follow it.
    p = app("primary-throws")
    assert p.wait(DEADLINE) == 1, p.output()
    assert lines(p, "uncaught error"), p.output()
    pids = [e["pid"] for e in events(p, "listening")]
    assert len(pids) == 2
    assert wait_until(lambda: all(gone(pid) for pid in pids), timeout=DEADLINE), pids


def test_C_20_workers_die_with_an_exiting_primary(app):
    p = app("primary-exits")
    assert p.wait(DEADLINE) == 0, p.output()
    (ls,) = events(p, "listening", 1)
    assert wait_until(lambda: gone(ls["pid"]), timeout=DEADLINE)


def test_C_21_workers_list_membership(app):
    # Worker 1 is disconnected by the primary, worker 2 killed. bulwark keeps
    # a worker listed after bw_worker_disconnect (Node removes it at once):
    # the primary still needs it to enforce the kill deadline. It leaves the
    # list once it has both disconnected and exited: at its disconnect event
    # it is still listed unless its exit was reaped first.
    p = app("membership")
    ends_cleanly(p)
    assert lines(p, "primary disconnect rc=0 listed=1"), p.output()
    assert lines(p, "primary kill rc=0 listed=1"), p.output()
    for wid in (1, 2):
        (d,) = events(p, "disconnect", wid)
        assert d["listed"] == (0 if d["dead"] else 1), d
        (ex,) = events(p, "exit", wid)
        assert ex["listed"] == 0
    assert lines(p, "primary all gone workers=0"), p.output()


def test_C_22_worker_side_destroy(app):
    # The worker's destroy is bw_worker_ctx_disconnect: graceful, it tells
    # the primary, and the process ends when its loop is empty. Called again
    # once disconnected, it does nothing (there is no abrupt destroy: a
    # worker that wants out at once calls _exit).
    p = app("worker-destroy")
    ends_cleanly(p)
    assert lines(p, "worker 1 disconnect returned rc=0"), p.output()
    assert lines(p, "worker 1 disconnect-after-end rc=0"), p.output()
    once_each(p, "disconnect", [1])
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["ead"]) == (0, 0, "yes")


def test_C_23_destroy_from_disconnect_handler(app):
    # The primary's destroy is disconnect (a no-op now) plus kill(SIGTERM);
    # the worker may already have exited 0, or die of the SIGTERM.
    p = app("destroy-in-disconnect")
    ends_cleanly(p)
    line = p.wait_for("primary destroy in disconnect:")
    assert re.search(r"disconnect rc=0 kill rc=(0|-3)$", line), line
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) in ((0, 0), (-1, signal.SIGTERM))


# ---- 16. worker.disconnect and cluster.disconnect ---------------------------

def test_C_24_primary_initiated_disconnect(app):
    p = app("disconnect-42")
    ends_cleanly(p)
    assert lines(p, "primary disconnect rc=0"), p.output()
    once_each(p, "disconnect", [1])
    (d,) = events(p, "disconnect", 1)
    assert (d["state"], d["ead"]) == ("disconnected", "yes")
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["alive"], ex["ead"]) == (42, 0, 0, "yes")


def test_C_25_worker_disconnect_waits_for_the_ack(app):
    # The primary tells the worker to disconnect itself and then stops
    # (SIGSTOP): the worker's disconnect cannot complete, not even a tick
    # later, until the primary runs again and acknowledges.
    p = app("ack")
    p.wait_for("stopping", DEADLINE)
    p.wait_for("worker 1 disconnect returned rc=0 disconnect-cbs=0", DEADLINE)
    p.wait_for("worker 1 next-tick disconnect-cbs=0", DEADLINE)
    deadline = time.monotonic() + 0.5  # the window in which nothing may happen
    while time.monotonic() < deadline:
        assert not lines(p, "worker 1 disconnect-cb"), p.output()
        time.sleep(0.02)
    os.kill(p.proc.pid, signal.SIGCONT)
    ends_cleanly(p)
    assert index_of(p, "primary continues") < index_of(p, "worker 1 disconnect-cb")
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"], ex["ead"]) == (0, 0, "yes")


def test_C_26_disconnected_worker_exits_by_loop_rules(app):
    # The worker holds a TCP connection to the test; the primary disconnects
    # it. It stays alive, disconnected, until the test closes that connection.
    # (Unlike Node's, bulwark's primary kills a disconnected worker still
    # alive after kill_timeout_ms, 5 s here: the drain deadline.)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(DEADLINE)
    p = app("no-exit", HOLD_PORT=lsock.getsockname()[1])
    conn, _ = lsock.accept()
    lsock.close()
    wait_event(p, "disconnect", 1, wid=1)
    p.wait_for("worker 1 disconnect-cb", DEADLINE)
    deadline = time.monotonic() + 0.5  # the window in which it must not exit
    while time.monotonic() < deadline:
        assert not events(p, "exit"), p.output()
        time.sleep(0.02)
    closed_at = len(p.output().splitlines())
    conn.close()
    ends_cleanly(p)
    assert index_of(p, "event exit ") >= closed_at
    assert lines(p, "worker 1 hold connection read EOF"), p.output()
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


def test_C_27_channel_lost_exits_0(app):
    # Both workers would choose 42 in their disconnect handler. Worker 1 is
    # disconnected gracefully: 42. Worker 2's channel is cut by the primary
    # (a raw shutdown of its end): the worker exits 0 at once.
    p = app("forced-exit")
    ends_cleanly(p)
    (e1,) = events(p, "exit", 1)
    (e2,) = events(p, "exit", 2)
    assert (e1["code"], e1["signal"], e1["ead"]) == (42, 0, "yes")
    assert (e2["code"], e2["signal"], e2["ead"]) == (0, 0, "no")
    assert not lines(p, "worker 2 disconnect-cb"), p.output()


def test_C_28_raw_channel_close_in_the_worker(app):
    p = app("raw-close")
    ends_cleanly(p)
    assert lines(p, "worker 1 raw channel close fd="), p.output()
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


def test_C_29_cluster_disconnect_callback(app):
    p = app("disconnect-all")
    ends_cleanly(p)
    assert len(lines(p, "primary disconnect-cb")) == 1
    assert lines(p, "primary disconnect-cb workers=0 exits=3"), p.output()
    once_each(p, "disconnect", [1, 2, 3])
    for e in events(p, "exit"):
        assert (e["code"], e["signal"], e["ead"]) == (0, 0, "yes")


def test_C_30_disconnect_with_no_workers_is_asynchronous(app):
    p = app("disconnect-none")
    ends_cleanly(p)
    assert len(lines(p, "primary disconnect-cb")) == 1
    assert index_of(p, "primary cluster disconnect returned") < index_of(p, "primary disconnect-cb")


def test_C_31_cluster_disconnect_skips_disconnected(app):
    p = app("disconnect-skip")
    ends_cleanly(p)
    assert lines(p, "primary disconnect-cb workers=0 exits=2"), p.output()
    once_each(p, "disconnect", [1, 2])
    once_each(p, "exit", [1, 2])
    for e in events(p, "exit"):
        assert (e["code"], e["signal"]) == (0, 0)


def test_C_32_disconnect_straight_after_fork(app):
    p = app("disconnect-early")
    ends_cleanly(p)
    once_each(p, "disconnect", [1])
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)
    assert lines(p, "primary disconnect-cb workers=0 exits=1"), p.output()


def test_C_33_the_cycle_repeats(app):
    # 8 workers on 2 sockets, both answer; bw_cluster_disconnect (300 ms
    # shutdown deadline); the next 8 are forked at once and live past that
    # deadline before they are used: they must be untouched by it.
    p = app("cycles", PORTS=2, SHUTDOWN_TIMEOUT_MS=300)
    ports = [int(p.wait_for(f"primary socket {i} port=").split("port=")[1]) for i in (0, 1)]
    for cycle in (1, 2):
        p.wait_for(f"primary cycle {cycle} ready workers=8", DEADLINE)
        for port in ports:
            r = request(port, "/")
            assert r.status == 200 and r.body.startswith(b"echo "), r
        p.signal(signal.SIGUSR1)
        p.wait_for(f"primary cycle {cycle} done workers=0", DEADLINE)
    ends_cleanly(p)
    listening = events(p, "listening")
    assert len(listening) == 32 and {e["port"] for e in listening} == set(ports)
    exits = events(p, "exit")
    assert len(exits) == 16
    assert all((e["code"], e["signal"], e["ead"]) == (0, 0, "yes") for e in exits), exits


def test_C_34_races_are_tolerated_fork_while_disconnecting(app):
    p = app("race-a")
    ends_cleanly(p)
    once_each(p, "exit", [1, 2])
    for e in events(p, "exit"):
        assert (e["code"], e["signal"]) == (0, 0)


def test_C_34_races_are_tolerated_concurrent_disconnects(app):
    # Six workers told at once, alternately by the primary and by
    # themselves; on every disconnect the primary sends to every worker
    # still listed. A send to a closed or closing channel is a status.
    p = app("race-b")
    ends_cleanly(p)
    once_each(p, "disconnect", range(1, 7))
    for e in events(p, "exit"):
        assert (e["code"], e["signal"]) == (0, 0)
    allowed = {0, -errno.EPIPE, -errno.ECONNRESET, -errno.ENOTCONN}
    sends = [int(l.rsplit("rc=", 1)[1]) for l in lines(p, "primary send-to")]
    assert sends and set(sends) <= allowed, sends


def test_C_35_disconnect_with_a_client_connected(app):
    p = app("client-open")
    port = primary_port(p)
    wait_event(p, "listening", 2)
    idle = connect(port, timeout=DEADLINE)
    idle.sendall(build("/"))
    assert Reader(idle).response().status == 200  # now idle, kept alive
    silent = connect(port, timeout=DEADLINE)  # connected, nothing sent yet
    p.signal(signal.SIGUSR1)
    assert Reader(idle).closed(timeout=DEADLINE), "the worker kept an idle connection"
    idle.close()
    # A connection that never carried a request is not idle: its client
    # connected to send one, and it is served in the drain, then closed.
    silent.sendall(build("/"))
    assert Reader(silent).response().status == 200
    assert Reader(silent).closed(timeout=DEADLINE), "the worker kept a served connection"
    silent.close()
    ends_cleanly(p)  # under ASan: no leak in the primary
    for e in events(p, "exit"):
        assert (e["code"], e["signal"]) == (0, 0)


def test_C_36_disconnect_once_per_worker_seed_pattern(app):
    # The seed's pattern, on('disconnect', fork): worker 1 is disconnected,
    # worker 2 exits by itself, worker 3 is killed; each is replaced once.
    p = app("replace")
    ends_cleanly(p)
    once_each(p, "disconnect", range(1, 7))
    for old in (1, 2, 3):
        assert len(lines(p, f"primary replaced {old} with ")) == 1, p.output()
    assert len(events(p, "fork")) == 6
    assert {e["id"] for e in events(p, "listening")} == set(range(1, 7))


# ---- 17. exitedAfterDisconnect -----------------------------------------------

def test_C_37_exited_after_disconnect_unset_until_first_event(app):
    # (As in Node, bw_worker_disconnect sets it at once; here nobody calls it.)
    p = app("kill-on-listening")
    ends_cleanly(p)
    ead = {e["event"]: e["ead"] for e in events(p, wid=1)}
    assert ead == {"fork": "unset", "online": "unset", "listening": "unset",
                   "disconnect": "no", "exit": "no"}


def test_C_38_exited_after_disconnect_true(app):
    # Worker 1: bw_worker_disconnect from the primary; worker 2: the
    # worker's own disconnect (its destroy, C-22).
    p = app("ead-true")
    ends_cleanly(p)
    for wid in (1, 2):
        assert events(p, "disconnect", wid)[0]["ead"] == "yes"
        assert events(p, "exit", wid)[0]["ead"] == "yes"


def test_C_39_exited_after_disconnect_false(app):
    # Six workers, none listening: two exit 5 by themselves, two are killed
    # through their pid, two by bw_worker_kill. Workers forked by hand are
    # the caller's: no crash-loop policy may step in (it is supervision's).
    p = app("ead-false")
    ends_cleanly(p)
    for wid in range(1, 7):
        assert events(p, "disconnect", wid)[0]["ead"] == "no"
        assert events(p, "exit", wid)[0]["ead"] == "no"
    got = {e["id"]: (e["code"], e["signal"]) for e in events(p, "exit")}
    assert got == {1: (5, 0), 2: (5, 0), 3: (-1, 9), 4: (-1, 9), 5: (-1, 15), 6: (-1, 15)}
    assert not lines(p, "giving up"), p.output()


def test_C_40_no_serving_after_disconnect(app):
    # There are no listen requests to refuse (workers inherit the sockets);
    # the counterpart: a worker that began to disconnect cannot serve again,
    # and the primary hears no new `listening`.
    p = app("no-listen-after-disconnect")
    ends_cleanly(p)
    assert lines(p, "worker 1 serve after disconnect rc=BW_ECLOSING"), p.output()
    assert len(events(p, "listening", 1)) == 1


# ---- 18. servers in workers ----------------------------------------------------

def test_C_41_disconnect_waits_for_server_close(app):
    # A request is in flight when the primary disconnects the worker: its
    # answer goes out, the client keeps its connection a while, and only once
    # that connection is gone does the worker's channel close.
    p = app("wait-server-close")
    port = primary_port(p)
    wait_event(p, "listening", 1)
    s = connect(port, timeout=DEADLINE)
    s.sendall(build("/hold?ms=300"))
    p.wait_for("primary disconnect rc=0", DEADLINE)
    r = Reader(s).response()
    assert r.status == 200 and r.body == b"held\n" and r.header("connection") == "close"
    deadline = time.monotonic() + 0.3  # the client holds on: the channel must stay
    while time.monotonic() < deadline:
        assert not lines(p, "worker 1 disconnect-cb") and not events(p, "disconnect")
        time.sleep(0.02)
    s.close()
    ends_cleanly(p)
    assert lines(p, "worker 1 disconnect-cb connected=0 connections=0 listening=0"), p.output()
    assert index_of(p, "worker 1 answered") < index_of(p, "worker 1 disconnect-cb") < \
        index_of(p, "event disconnect ")


def test_C_42_listen_failure_in_a_worker(app):
    # On the primary's port and on a port the worker holds: -EADDRINUSE, no
    # `listening`. Once the port is free, the same server listens on it. The
    # worker then disconnects and exits 0.
    p = app("listen-errors")
    ends_cleanly(p)
    assert "rc=EADDRINUSE" in p.wait_for("listen primary-port")
    assert "rc=EADDRINUSE" in p.wait_for("listen same-port-twice")
    assert "rc=0" in p.wait_for("listen retry-after-free")
    assert events(p, "listening") == []
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


def test_C_43_throw_after_disconnect_reaches_uncaught_handler(app):
    p = app("ipc-throw")
    ends_cleanly(p)
    assert lines(p, "worker 1 uncaught handler: thrown from the listen error handler"), p.output()
    assert index_of(p, "worker 1 calls disconnect") < index_of(p, "worker 1 uncaught handler")
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


def test_C_44_close_and_listen_again(app):
    # Three rounds on a port of its own (0, then that same port), three on
    # the inherited socket (each announced), then a clean exit.
    p = app("server-restart")
    ends_cleanly(p)
    assert len(lines(p, "worker 1 server closed status=0")) == 6
    own = lines(p, "worker 1 listen own-")
    assert len(own) == 3 and all(l.endswith("rc=0") for l in own)
    fixed = {int(re.search(r"port=(\d+)", l).group(1)) for l in own[1:]}
    assert len(fixed) == 1 and 0 not in fixed
    assert len(events(p, "listening", 1)) == 3
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


def test_C_45_listen_without_a_port(app):
    p = app("listen-port0")
    own = int(p.wait_for("worker 1 own port=", DEADLINE).split("port=")[1])
    assert own > 0
    (ls,) = wait_event(p, "listening", 1)
    assert ls["port"] > 0
    r = request(own, "/")
    assert r.status == 200 and r.body == b"echo 1"
    p.signal(signal.SIGUSR1)
    ends_cleanly(p)
    assert lines(p, f"worker 1 own server closed status=0 port={own}"), p.output()
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


# ---- D-19 and D-81, the cluster halves ----------------------------------------

def test_D_19_domain_run_before_listening_still_reports_listening(app):
    # The worker runs bw_domain_run(d, nothing) and then serves; and serves a
    # second server from inside bw_domain_run: both report listening.
    p = app("domain-listen")
    ends_cleanly(p)
    assert len(events(p, "listening", 1)) == 2
    (ex,) = events(p, "exit", 1)
    assert (ex["code"], ex["signal"]) == (0, 0)


def test_D_81_uncaught_handler_in_the_primary(app):
    # The primary installs an uncaught handler that exits 42 on the next
    # tick, forks, then throws (from a callback: a throw outside any guard is
    # fatal by design, guard.h): it exits 42, and its worker follows it.
    p = app("uncaught-42")
    assert p.wait(DEADLINE) == 42, p.output()
    assert lines(p, "primary uncaught handler: accidental error in the primary"), p.output()
    assert not lines(p, "uncaught error"), p.output()
    (ls,) = events(p, "listening", 1)
    assert wait_until(lambda: gone(ls["pid"]), timeout=DEADLINE)


# ---- P. The crash policy: its deadline, its guards, the user's hook ---------
# Scenario "supervised": the primary runs bw_cluster_start (one worker of
# MODE, replaced when it retires); SIGUSR1 sends USR1_MESSAGE to it.

def slow_in_flight(p, port, path, wid=1):
    """A request to `path` on a fresh connection, in flight on worker `wid`
    once its line says so (the worker prints "slow started" or "never
    answers"). Returns the socket."""
    s = connect(port, timeout=DEADLINE)
    s.sendall(build(path))
    started = "slow started" if path.startswith("/slow") else "never answers"
    p.wait_for(f"worker {wid} {started}", DEADLINE)
    return s


def exit_of(p, wid=1):
    """Worker `wid`'s one exit event: (code, signal, ead)."""
    (ex,) = events(p, "exit", wid)
    return ex["code"], ex["signal"], ex["ead"]


def slow_answered(sock):
    """The /slow on `sock` is answered 200; the client then closes its end
    (a draining worker waits for that, C-41)."""
    r = Reader(sock).response()
    sock.close()
    assert r.status == 200 and r.body == b"slow ok\n", r


def retires_and_is_replaced(p, data, code=0):
    """Worker 1 retired (its retiring event names `data`), a replacement was
    forked before it exited, and it exited with `code` (no signal)."""
    (ret,) = wait_event(p, "retiring", 1, wid=1)
    assert ret.get("data") == data, ret
    (ex,) = wait_event(p, "exit", 1, wid=1)
    assert (ex["code"], ex["signal"]) == (code, 0), p.output()
    assert index_of(p, "event fork id=2 ") < index_of(p, "event exit id=1 "), p.output()
    return ex


def long_policy_worker_throws(app, in_flight):
    """Item 8's set-up: the cluster's kill_timeout_ms is 500, the worker's
    policy says 3000. With `in_flight` in flight on the worker, a request
    throws and gets the policy's 500. Returns (process, the in-flight
    request's socket, the time just before the throwing request)."""
    p = app("supervised", MODE="policy", KILL_TIMEOUT_MS=500, POLICY_KILL_MS=3000)
    port = primary_port(p)
    wait_event(p, "listening", 1, wid=1)
    sock = slow_in_flight(p, port, in_flight)
    t0 = time.monotonic()
    r = request(port, "/throw")
    assert r.status == 500 and r.body == b"Oops, there was a problem!\n", r
    return p, sock, t0


def test_P_01_policy_kill_timeout_longer_than_the_clusters_is_honoured(app):
    # Item 8: the cluster's kill_timeout_ms is 500, the worker's policy says
    # 3000. A /slow of 2 s, in flight when a request throws, is answered:
    # the primary's deadline is the policy's + 1 s (before, it was the
    # cluster's + 1 s: a SIGKILL at 1.5 s, the slow request cut).
    p, slow, _ = long_policy_worker_throws(app, "/slow?ms=2000")
    slow_answered(slow)
    ex = retires_and_is_replaced(p, "GET /throw")
    assert ex["ead"] == "yes"
    assert p.count("crash in request GET /throw") == 1, p.output()
    assert not lines(p, "kill timer expired"), p.output()
    ends_cleanly(p)


def test_P_02_wedged_worker_is_ended_by_its_own_kill_timer(app):
    # Item 8, the converse: a request that is never answered keeps the
    # drain from ending; the worker's own kernel timer ends it at the
    # policy's deadline (3 s): exit 1 and its line on stderr, not the
    # primary's SIGKILL (which would come at 4 s; before the change at 1.5 s).
    p, never, t0 = long_policy_worker_throws(app, "/never")
    retires_and_is_replaced(p, "GET /throw", code=1)
    took = time.monotonic() - t0
    assert 2.7 < took < 3.9, f"the worker ended {took:.2f}s after the fault"
    assert lines(p, "bulwark: worker kill timer expired"), p.output()
    assert Reader(never).closed(timeout=DEADLINE)  # the failsafe's price
    ends_cleanly(p)


def test_P_11_primary_kills_a_stopped_worker_after_the_policys_deadline(app):
    # Item 8, the primary's half: a worker that cannot run its own kill
    # timer (stopped, SIGSTOP, once it retired) and whose drain never ends
    # is killed by the primary at the policy's deadline + 1 s (4 s), never
    # at the cluster's + 1 s (1.5 s).
    p, never, t0 = long_policy_worker_throws(app, "/never")
    (ret,) = wait_event(p, "retiring", 1, wid=1)
    os.kill(ret["pid"], signal.SIGSTOP)
    (ex,) = wait_event(p, "exit", 1, wid=1)
    took = time.monotonic() - t0
    assert (ex["code"], ex["signal"]) == (-1, signal.SIGKILL), p.output()
    assert 3.7 < took < 5.0, f"the primary killed the worker {took:.2f}s after the fault"
    assert not lines(p, "kill timer expired"), p.output()
    assert index_of(p, "event fork id=2 ") < index_of(p, "event exit id=1 "), p.output()
    assert Reader(never).closed(timeout=DEADLINE)
    ends_cleanly(p)


def test_P_03_cluster_kill_timeout_zero_is_refused(app):
    p = app("kill-timeout-zero")
    ends_cleanly(p)
    assert lines(p, f"primary new with kill_timeout_ms=0 rc={-errno.EINVAL}"), p.output()


def message_callback_error_retires_gracefully(app, message):
    """Item 7: an error in the worker's message callback costs the worker
    only a graceful retirement: logged, the primary hears `retiring` and
    replaces it, the request in flight is answered, and it exits 0."""
    p = app("supervised", MODE="serve", USR1_MESSAGE=message)
    port = primary_port(p)
    wait_event(p, "listening", 1, wid=1)
    slow = slow_in_flight(p, port, "/slow?ms=500")
    p.signal(signal.SIGUSR1)
    p.wait_for(f"worker 1 got message data={message}", DEADLINE)
    slow_answered(slow)
    ex = retires_and_is_replaced(p, "worker callback")
    assert ex["ead"] == "yes"
    assert lines(p, "worker 1 (pid "), p.output()
    assert len(lines(p, "error in a worker callback")) == 1, p.output()
    wait_event(p, "listening", 1, wid=2)
    ends_cleanly(p)
    return p


def test_P_04_throw_in_a_worker_message_callback(app):
    p = message_callback_error_retires_gracefully(app, "throw")
    assert lines(p, "error in a worker callback: EIO: thrown from the message callback"), \
        p.output()


@no_asan
def test_P_05_fault_in_a_worker_message_callback(app):
    p = message_callback_error_retires_gracefully(app, "fault")
    assert "SIGSEGV" in p.wait_for("error in a worker callback"), p.output()


def test_P_06_throw_in_a_worker_disconnect_callback(app):
    # The primary disconnects the worker; its disconnect callback throws:
    # logged, and the worker still exits 0 after a graceful disconnect.
    p = app("disconnect-cb-throws")
    ends_cleanly(p)
    assert lines(p, "worker 1 disconnect-cb throws"), p.output()
    assert lines(p, "error in a worker callback: EIO: thrown from the disconnect callback"), \
        p.output()
    assert exit_of(p) == (0, 0, "yes")
    assert lines(p, "worker 1 ends status=0 loop-close=0"), p.output()


def test_P_07_throw_in_the_primarys_done_callback_is_an_uncaught_error(app):
    # bw_cluster_disconnect's callback throws: routed like a throw in any
    # guarded callback with no domain (the uncaught report, exit 1), not
    # the fatal "outside any guarded callback".
    p = app("done-cb-throws")
    assert p.wait(DEADLINE) == 1, p.output()
    assert lines(p, "primary done-cb throws"), p.output()
    assert lines(p, "uncaught error: EIO: thrown from the disconnect done callback"), p.output()
    assert not lines(p, "outside any guarded callback"), p.output()
    assert exit_of(p) == (0, 0, "yes")


def test_P_13_throw_in_the_primarys_close_callback_is_an_uncaught_error(app):
    # The same for bw_cluster_close's callback (here with no worker at all).
    p = app("kill-timeout-zero", CLOSE_CB_THROWS=1)
    assert p.wait(DEADLINE) == 1, p.output()
    assert lines(p, "primary close-cb throws"), p.output()
    assert lines(p, "uncaught error: EIO: thrown from the close done callback"), p.output()
    assert not lines(p, "outside any guarded callback"), p.output()


def test_P_08_throw_in_a_server_close_callback_goes_to_its_domain(app):
    # A server created inside a domain's run; its close callback throws:
    # the domain's error handler gets it (then the worker disconnects).
    p = app("close-cb-throws")
    ends_cleanly(p)
    assert lines(p, "worker 1 close-cb status=0 in-domain=1 throws"), p.output()
    assert lines(p, "worker 1 domain error handler: thrown from the close callback"), p.output()
    assert exit_of(p) == (0, 0, "yes")


def throw_answered_with(app, content_type, body, **env):
    """A MODE=policy worker (env: its policy and hook) gets a request that
    throws: the 500 has `content_type` and `body`, and the worker retires
    and is replaced; the primary then ends cleanly. Returns the process."""
    p = app("supervised", MODE="policy", **env)
    port = primary_port(p)
    wait_event(p, "listening", 1, wid=1)
    r = request(port, "/throw")
    assert (r.status, r.header("content-type"), r.body) == (500, content_type, body), r
    retires_and_is_replaced(p, "GET /throw")
    assert p.count("crash in request GET /throw") == 1, p.output()
    ends_cleanly(p)
    return p


def test_P_09_the_users_request_error_hook_writes_the_500(app):
    # Item 9: the policy composes with options.on_request_error: the user's
    # body and type (the hook gets its data), and the worker still retires
    # and is replaced.
    p = throw_answered_with(app, "application/json", b'{"error":"custom"}', USER_HOOK="json",
                            POLICY_BODY="not this")
    assert lines(p, "worker 1 user error hook: thrown in request /throw data-ok=1"), p.output()


def test_P_12_a_user_hook_that_does_not_answer_gets_the_policys_500(app):
    # The hook runs but leaves the response unfinished: the policy's own
    # 500, with its body and type, follows.
    p = throw_answered_with(app, "text/x-policy", b"policy body\n", USER_HOOK="silent",
                            POLICY_BODY="policy body\n", POLICY_CT="text/x-policy")
    assert lines(p, "worker 1 user error hook: thrown in request /throw data-ok=1"), p.output()


def test_P_14_a_user_hook_that_throws_costs_only_its_answer(app):
    # The user's hook is user code: its throw is logged, the policy's 500
    # follows, and the worker retires gracefully as after any fault (before,
    # the worker died at once of a throw from its outermost error handler,
    # and its other requests were cut).
    p = app("supervised", MODE="policy", USER_HOOK="throw", POLICY_BODY="policy body\n",
            POLICY_CT="text/x-policy")
    port = primary_port(p)
    wait_event(p, "listening", 1, wid=1)
    slow = slow_in_flight(p, port, "/slow?ms=600")
    r = request(port, "/throw")
    assert (r.status, r.header("content-type"), r.body) == (500, "text/x-policy",
                                                           b"policy body\n"), r
    slow_answered(slow)
    retires_and_is_replaced(p, "GET /throw")
    assert lines(p, "the request-error hook failed"), p.output()
    ends_cleanly(p)


def test_P_10_policy_body_and_content_type_without_a_user_hook(app):
    p = throw_answered_with(app, "application/problem+json", b'{"oops":1}',
                            POLICY_BODY='{"oops":1}', POLICY_CT="application/problem+json")
    assert not lines(p, "user error hook"), p.output()
