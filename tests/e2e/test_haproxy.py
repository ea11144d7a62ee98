"""J: behind a real load balancer (issue 16, section 3): the PROXY protocol
on the example server (PROXY_PROTOCOL=1), and HAProxy from Debian running
contrib/haproxy/haproxy.cfg (its ports rewritten, its check interval
shortened) in front of three instances of examples/bulwark-server on
loopback, each a primary with two workers on its own port.

- J-01: no proxy, the header by hand: v1 and v2 headers give the peer the
  server reports (/peer), whole or in pieces; LOCAL and UNKNOWN keep the
  socket's own; an invalid one is closed without a byte of answer; and a
  connection handed off to another worker (a rolling restart) keeps the
  peer its header gave, without a second header; a crash report names it.
- J-02: a header that never ends is closed, silently, at the headers
  timeout (tests/e2e/http_test_server, HEADERS_TIMEOUT_MS=300).
- J-03: through HAProxy, a keep-alive load that reuses its connections
  (ReuseLoad, 40 clients) and fresh connections (fresh_storm, 8 at once) of
  which 5% go to fault routes (/segv, /throw, /abort: each retires its
  worker), for 3 s: every innocent request is answered 200, and the peer
  behind HAProxy is the client's.
- J-04: the same load while one instance is stopped with SIGTERM: zero
  failures; HAProxy marks it down.
- J-05: the same load while one instance's primary gives up in a crash
  loop (FAIL_AT_START_IF: replacements fault at start; a fault retires a
  worker; RESTART_INTENSITY=1): zero failures; HAProxy takes it out within
  its check interval (fall x inter, plus slack).
- J-06: a rolling binary upgrade (SIGUSR2) of the three instances, one
  after another, under the load (4 s): zero failures.

For the figures in docs/DEPLOYMENT.md, BW_HAPROXY_RETRY_ON replaces the
configuration's retry-on line ("none", "conn-failure") and
BW_HAPROXY_HANDOFF=0 turns connection handoff off in the instances; with
either, the tests print their tallies (pytest -s) and assert nothing about
failures: the promise is the shipped configuration's, with handoff on.
"""
import os
import re
import signal
import socket
import threading
import time

from bwtest import (EventLog, Process, Reader, example_binary, free_port, fresh_storm, gone,
                    listening_port, no_asan, start_server, wait_until)
from reuseload import ReuseLoad

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = os.path.join(HERE, "..", "..", "contrib", "haproxy", "haproxy.cfg")
HAPROXY = "/usr/sbin/haproxy"
INTER_MS = 200  # the test's check interval (the file says 1s)
FALL = 2
FAULTS = ["/segv", "/throw", "/abort"]
LOAD_S = 3.0


class Instance:
    """One bulwark-server primary with its workers, behind the proxy."""

    def __init__(self, tmp_path, name, env=None):
        d = tmp_path / name
        d.mkdir()
        self.log = EventLog(str(d / "events.jsonl"))
        full = {"PORT": 0, "WORKERS": 2, "BW_EVENT_LOG": self.log.path, "POISON_THRESHOLD": 0,
                "PROXY_PROTOCOL": 1, "HANDOFF": os.environ.get("BW_HAPROXY_HANDOFF", "1"),
                "ADMIN_PORT": -1,
                # One load client, one address: the fault budget would block
                # it (all of it) after 5 crashes; faults here are on purpose.
                "CLIENT_FAULT_BUDGET": 0}
        full.update(env or {})
        self.p = Process([example_binary()], env=full, ready_pattern=None)
        self.port = listening_port(self.log, 2)
        self.admin_port = self.log.wait_count("admin", 1)[0]["port"]  # /readyz
        self.pids = {self.p.proc.pid}  # primaries (an upgrade adds its successor)

    def kill(self):
        self.p.kill()
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class HAProxy:
    """haproxy -db with the shipped configuration, rewritten for these
    ports; its runtime API on a socket in tmp_path."""

    def __init__(self, tmp_path, instances):
        assert os.path.exists(HAPROXY), f"{HAPROXY} is missing: scripts/deps.sh test installs it"
        with open(CFG) as f:
            cfg = f.read()
        self.port = free_port()
        self.sock = str(tmp_path / "haproxy.sock")
        cfg = cfg.replace("stats socket /run/haproxy/admin.sock", f"stats socket {self.sock}")
        cfg = cfg.replace("log /dev/log local0", "log stdout format raw local0 notice")
        cfg = cfg.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        for i, inst in enumerate(instances, 1):
            cfg = cfg.replace(f"127.0.0.1:808{i} port 910{i}",
                              f"127.0.0.1:{inst.port} port {inst.admin_port}")
        assert cfg.count("check inter 1s fall 2") == 1
        cfg = cfg.replace("check inter 1s fall 2", f"check inter {INTER_MS}ms fall {FALL}")
        retry = os.environ.get("BW_HAPROXY_RETRY_ON")
        if retry:
            cfg, n = re.subn(r"^    retry-on .*$", f"    retry-on {retry}", cfg, flags=re.M)
            assert n == 1
        path = tmp_path / "haproxy.cfg"
        path.write_text(cfg)
        self.p = Process([HAPROXY, "-db", "-f", str(path)], ready_pattern=None)
        assert wait_until(lambda: os.path.exists(self.sock) or self.p.proc.poll() is not None,
                          10) and self.p.proc.poll() is None, self.p.output()
        assert wait_until(lambda: set(self.status().values()) == {"UP"}, 10), self.status()

    def command(self, line):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall(line.encode() + b"\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        return out.decode()

    def status(self):
        """{server: status} from "show stat" (UP, DOWN, "UP 1/2"...)."""
        lines = self.command("show stat").splitlines()
        head = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "bulwark" and row.get("svname") not in ("BACKEND", None):
                out[row["svname"]] = row["status"]
        return out

    def stop(self):
        self.p.signal(signal.SIGUSR1)  # soft stop: finish what is in flight
        assert self.p.wait(10) == 0, self.p.output()[-2000:]


class Rig:
    def __init__(self, tmp_path, envs=None):
        envs = envs or [{}, {}, {}]
        self.instances = []
        self.haproxy = None
        try:
            for i, env in enumerate(envs, 1):
                self.instances.append(Instance(tmp_path, f"b{i}", env))
            self.haproxy = HAProxy(tmp_path, self.instances)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.haproxy is not None:
            self.haproxy.p.kill()
        for inst in self.instances:
            inst.kill()


def run_load(port, during=None, duration=LOAD_S, fault_share=0.05):
    """ReuseLoad (keep-alive, reused connections) and a fresh_storm (5% to
    fault routes) through port for `duration`; `during()` runs in the
    middle. Returns (reuse tally, reuse summary, storm tally)."""
    reuse = ReuseLoad(port, duration=duration)
    storm = {}
    loads = [threading.Thread(target=reuse.run, daemon=True),
             threading.Thread(target=lambda: storm.update(
                 fresh_storm(port, 8, duration, FAULTS, fault_share)), daemon=True)]
    for t in loads:
        t.start()
    result = None
    if during is not None:
        time.sleep(duration / 3)  # the event falls in the middle of the load
        result = during()
    for t in loads:
        t.join(duration + 15)
    return reuse, storm, result


def failures(reuse, storm):
    """Client-visible failures of innocent requests: lost or wrong on the
    keep-alive load, anything but 200 on the fresh connections."""
    t = reuse.t
    lost = t["lost_eof"] + t["lost_reset"] + t["first_lost"] + t["other"] + t["connect_failures"]
    bad = sum(n for status, n in storm["innocent"].items() if status != 200)
    return lost + bad + storm["connect_failures"]


def assert_no_failures(tag, reuse, storm):
    print(f"{tag}: retry-on {os.environ.get('BW_HAPROXY_RETRY_ON', '(as shipped)')}, "
          f"handoff {os.environ.get('BW_HAPROXY_HANDOFF', '1')}: "
          f"client-visible failures {failures(reuse, storm)}; reuse {reuse.summary()}; "
          f"fresh {storm}")
    if os.environ.get("BW_HAPROXY_RETRY_ON") or os.environ.get("BW_HAPROXY_HANDOFF") == "0":
        return  # a figure, not the shipped configuration's promise
    assert failures(reuse, storm) == 0, (reuse.summary(), reuse.other, storm)
    assert reuse.t["reused_ok"] > 100 and storm["innocent"].get(200, 0) > 50, \
        (reuse.summary(), storm)


def proxied(port, header, path="/peer", pieces=1):
    """header + a GET of path on a new connection, sent in `pieces`; every
    byte the server sends until it closes (b"" when it answers nothing)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    data = header + f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    step = max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        s.sendall(data[i:i + step])
        if pieces > 1:
            time.sleep(0.002)  # separate segments, so that the server reads them apart
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    s.close()
    return out


def body(response):
    return response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in response else None


V2_SIG = b"\r\n\r\n\0\r\nQUIT\n"


@no_asan
def test_J_01_proxy_header_gives_the_peer(tmp_path):
    inst = Instance(tmp_path, "b1", {"HANDOFF": 1, "BW_LOG_FORMAT": "json"})
    try:
        port = inst.port
        v1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
        assert body(proxied(port, v1)) == b"192.0.2.1:56324"
        assert body(proxied(port, v1, pieces=20)) == b"192.0.2.1:56324"
        v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 443\r\n"
        assert body(proxied(port, v1_6)) == b"2001:db8::7:4000"
        v2 = V2_SIG + b"\x21\x11\x00\x0c" + bytes([203, 0, 113, 7, 127, 0, 0, 1, 0x1f, 0x90, 0, 80])
        assert body(proxied(port, v2)) == b"203.0.113.7:8080"
        assert body(proxied(port, v2, pieces=30)) == b"203.0.113.7:8080"
        local = V2_SIG + b"\x20\x00\x00\x00"
        assert body(proxied(port, local)).startswith(b"127.0.0.1:")
        assert body(proxied(port, b"PROXY UNKNOWN\r\n")).startswith(b"127.0.0.1:")
        # Invalid: dropped, not answered (the specification's rule).
        for bad in [b"", b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                    V2_SIG + b"\x22\x11\x00\x0c" + bytes(12)]:
            assert proxied(port, bad) == b"", bad
        assert inst.p.wait_count("invalid PROXY protocol header", 4, timeout=5), inst.p.output()
        # A handed-off connection keeps the peer its header gave.
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(v1 + b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        rd = Reader(s)
        first_pid = rd.response().body
        inst.p.signal(signal.SIGHUP)  # rolling restart: idle connections move
        inst.log.wait_count("listening", 4, timeout=10)
        assert wait_until(lambda: first_pid.strip().decode() not in
                          {str(p) for p in inst.log.alive_workers()}, 10)
        s.sendall(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rd.response().body == b"192.0.2.1:56324"
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rd.response().body != first_pid  # served by another worker: it moved
        s.close()
        # The crash report of a request (JSON: the text one has no peer)
        # names the client the header gave.
        out = proxied(port, b"PROXY TCP4 192.0.2.9 127.0.0.1 7777 80\r\n", path="/throw")
        assert out.startswith(b"HTTP/1.1 500"), out
        report = inst.p.wait_for('"peer":"192.0.2.9:7777"', 5)
        assert "/throw" in report, report
    finally:
        inst.kill()


@no_asan
def test_J_02_header_timeout_closes_silently():
    p = start_server({"PROXY_PROTOCOL": 1, "HEADERS_TIMEOUT_MS": 300})
    try:
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        t0 = time.monotonic()
        s.sendall(b"PROXY TCP4 192.0.2.1 ")
        assert s.recv(100) == b""  # closed, with nothing said
        took = time.monotonic() - t0
        assert 0.25 < took < 3.0, took
        s.close()
    finally:
        p.kill()


@no_asan
def test_J_03_faults_through_haproxy(tmp_path):
    rig = Rig(tmp_path)
    try:
        # The client's address and port reach the server through the proxy
        # (the port tells the client's socket from the proxy's).
        s = socket.create_connection(("127.0.0.1", rig.haproxy.port), timeout=5)
        s.sendall(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
        me = "%s:%d" % s.getsockname()
        assert Reader(s).response().body.decode() == me
        s.close()
        reuse, storm, _ = run_load(rig.haproxy.port)
        assert_no_failures("J-03 faults", reuse, storm)
        assert sum(storm["fault"].values()) > 5, storm
        rig.haproxy.stop()
    finally:
        rig.close()


@no_asan
def test_J_04_an_instance_stopped_under_load(tmp_path):
    rig = Rig(tmp_path)
    try:
        victim = rig.instances[1]

        def stop():
            victim.p.signal(signal.SIGTERM)
            code = victim.p.wait(20)
            t = time.monotonic()
            assert wait_until(lambda: rig.haproxy.status()["bulwark2"].startswith("DOWN"), 5)
            return code, time.monotonic() - t

        reuse, storm, (code, down_after) = run_load(rig.haproxy.port, stop)
        assert code == 0
        print(f"J-04: marked down {down_after * 1000:.0f} ms after its primary exited")
        assert_no_failures("J-04 SIGTERM", reuse, storm)
        rig.haproxy.stop()
    finally:
        rig.close()


@no_asan
def test_J_05_an_instance_that_gives_up_is_taken_out(tmp_path):
    flag = tmp_path / "fail-at-start"
    env = {"FAIL_AT_START_IF": str(flag), "RESTART_INTENSITY": 1}
    rig = Rig(tmp_path, [{}, env, {}])
    try:
        victim = rig.instances[1]

        def crash_loop():
            flag.write_text("")
            # A fault retires a worker; its replacements fault at start.
            v1 = b"PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n"
            proxied(victim.port, v1, path="/segv")
            victim.log.wait_count("giveup", 1, timeout=15)
            t = time.monotonic()
            code = victim.p.wait(20)
            assert wait_until(lambda: rig.haproxy.status()["bulwark2"].startswith("DOWN"),
                              FALL * INTER_MS / 1000 + 2)
            return code, time.monotonic() - t

        reuse, storm, (code, down_after) = run_load(rig.haproxy.port, crash_loop)
        assert code == 2  # it gave up
        print(f"J-05: marked down {down_after * 1000:.0f} ms after the give-up")
        assert_no_failures("J-05 give-up", reuse, storm)
        rig.haproxy.stop()
    finally:
        rig.close()


@no_asan
def test_J_06_rolling_upgrade_of_the_three_instances(tmp_path):
    rig = Rig(tmp_path)
    try:
        def upgrade_all():
            for inst in rig.instances:
                inst.p.signal(signal.SIGUSR2)
                ready = inst.log.wait_count("upgrade_ready", 1, timeout=20)[0]
                inst.pids.add(ready["successor"])
                assert inst.p.proc.wait(20) == 0
            return [inst.log.of("upgrade_ready")[0]["successor"] for inst in rig.instances]

        reuse, storm, successors = run_load(rig.haproxy.port, upgrade_all, duration=4.0)
        assert_no_failures("J-06 upgrade", reuse, storm)
        assert set(rig.haproxy.status().values()) == {"UP"}
        rig.haproxy.stop()
        for pid in successors:
            os.kill(pid, signal.SIGTERM)
        for pid in successors:
            assert wait_until(lambda: gone(pid), 20), pid
    finally:
        rig.close()
