"""Helpers for bulwark's end-to-end tests: start a server binary, wait for
it to be ready (by reading the line it prints, with a deadline: never a
sleep), talk to it with raw sockets, parse HTTP/1.1 responses, and check
how the process ended.

The server binary comes from BW_BUILD_DIR (set by CTest); BW_VARIANT=asan
selects the ASan+UBSan build.
"""
import errno
import itertools
import os
import random
import select
import selectors
import signal
import socket
import subprocess
import threading
import time

BUILD_DIR = os.environ.get("BW_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build/gcc"))
VARIANT = os.environ.get("BW_VARIANT", "plain")



def no_asan(fn):
    """Marks a test that raises a fault signal on purpose, which the
    sanitizers would report before bulwark could catch it: CMake reads the
    line `@no_asan` and registers the test for the plain build only."""
    return fn

def binary(name):
    """The server binary of this variant; never silently another one."""
    suffix = "_asan" if VARIANT == "asan" else ""
    path = os.path.join(BUILD_DIR, "tests", name + suffix)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built (variant {VARIANT})")
    return path


class Process:
    """A child process whose combined output is collected by a thread."""

    def __init__(self, argv, env=None, ready_pattern="listening ", ready_timeout=10.0):
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        full_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen(argv, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._lines = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None
        if ready_pattern is not None:
            line = self.wait_for(ready_pattern, ready_timeout)
            self.port = int(line.split()[-1])

    def _read(self):
        for raw in self.proc.stdout:
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._lines.append(None)  # end of output
            self._cond.notify_all()

    def output(self):
        with self._cond:
            return "\n".join(l for l in self._lines if l is not None)

    def wait_for(self, pattern, timeout=10.0, start=0):
        """Wait until a line containing `pattern` appears; return it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[start:]:
                    if line is not None and pattern in line:
                        return line
                if self._lines and self._lines[-1] is None:
                    raise AssertionError(f"process ended before {pattern!r}:\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {pattern!r}:\n{self.output()}")
                self._cond.wait(left)

    def wait_count(self, pattern, n, timeout=10.0):
        """Wait until `pattern` has appeared on at least n lines."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.count_locked(pattern) < n:
                if self._lines and self._lines[-1] is None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self.count_locked(pattern) >= n

    def count_locked(self, pattern):
        return sum(1 for l in self._lines if l is not None and pattern in l)

    def count(self, pattern):
        with self._cond:
            return sum(1 for l in self._lines if l is not None and pattern in l)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def signal_group(self, sig):
        """`sig` to the whole process group (the process was started in a
        session of its own, so the group is it and its children): a
        terminal's Ctrl-C, systemd's KillMode=control-group."""
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout=20.0):
        """Wait for exit; return the exit code (negative: killed by that signal)."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"process did not exit within {timeout}s:\n{self.output()}")
        # Everything the process wrote is read before anyone looks at it.
        self._reader.join(timeout)
        return code

    def kill(self):
        """SIGKILL to the whole group, whether or not its leader is still
        there: after a binary upgrade (SIGUSR2) the old primary has exited
        and its successor, in the same group, serves on. (The group's id
        is not reused while any member lives, so this reaches only them.)"""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


def start_server(env=None, name="http_test_server"):
    return Process([binary(name)], env=env)


def stop_server(p, sig=signal.SIGUSR1, timeout=20.0):
    """Close gracefully and require a clean exit (status 0: no leak under
    ASan, no handle left open)."""
    if p.proc.poll() is None:
        p.signal(sig)
    code = p.wait(timeout)
    assert code == 0, f"server exit status {code}:\n{p.output()}"
    return code


def free_port():
    """A loopback port nobody listens on now (for a program that must be
    told its port before it starts: systemd-socket-activate, HAProxy)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def gone(pid):
    """True once `pid` has exited (reaped, or a zombie nobody reaps yet: a
    new primary of an upgrade is orphaned when its predecessor exits)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def kill_pid(pid):
    """SIGKILL to a process this test did not start as a Process (a new
    primary of an upgrade); gone already is fine."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def connect(port, host="127.0.0.1", timeout=5.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name lowercased, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:60]!r}>"


class Reader:
    """Reads HTTP/1.1 responses from a socket, keeping leftover bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.eof = False

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise EOFError("connection closed by the server")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_request=False):
        while True:
            status_line = self._line()
            parts = status_line.decode("latin-1").split(" ", 2)
            status = int(parts[1])
            headers = []
            raw = [status_line]
            while True:
                line = self._line()
                raw.append(line)
                if line == b"":
                    break
                k, v = line.decode("latin-1").split(":", 1)
                headers.append((k.strip().lower(), v.strip()))
            if status == 100:
                continue  # interim response
            break
        resp = Response(status, parts[2] if len(parts) > 2 else "", headers, b"", b"\r\n".join(raw))
        if head_request or status in (204, 304):
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            resp.body = body
        elif cl is not None:
            resp.body = self._exact(int(cl))
        else:
            chunks = [self.buf]
            self.buf = b""
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                chunks.append(data)
            self.eof = True
            resp.body = b"".join(chunks)
        return resp

    def closed(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within
        `timeout` without sending anything more."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        if data:
            self.buf += data
            return False
        return True


def request(port, path="/", method="GET", headers=None, body=b"", host="127.0.0.1", timeout=10.0):
    """One request on a fresh connection; returns the Response."""
    s = connect(port, host, timeout)
    try:
        s.sendall(build(path, method, headers, body))
        return Reader(s).response(head_request=(method == "HEAD"))
    finally:
        s.close()


def build(path="/", method="GET", headers=None, body=b"", version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", "Host: test"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def wait_until(predicate, timeout=5.0, interval=0.01):
    """Poll a condition with a deadline (for states only observable from
    outside, such as a process's descriptor count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# ---- The cluster's main job (examples/bulwark-server) --------------------

def example_binary(name="bulwark-server"):
    path = os.path.join(BUILD_DIR, "examples", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built")
    return path


def tool_binary(name):
    path = os.path.join(BUILD_DIR, "bench", name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not built")
    return path



class EventLog:
    """The primary's JSON-lines event log (BW_EVENT_LOG)."""

    def __init__(self, path):
        self.path = path

    def events(self):
        import json
        try:
            with open(self.path) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        # The primary may be writing the last line as we read: a line is
        # complete only once its newline is there.
        return [json.loads(line) for line in lines[:-1] if line.strip()]

    def of(self, kind):
        return [e for e in self.events() if e["event"] == kind]

    def wait_count(self, kind, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.of(kind)) >= n:
                return self.of(kind)
            time.sleep(0.01)
        raise AssertionError(f"{n} '{kind}' events expected within {timeout}s, got "
                             f"{len(self.of(kind))}: {self.events()}")

    def alive_workers(self):
        """Workers forked and not yet exited."""
        forked = {e["pid"] for e in self.of("fork")}
        exited = {e["pid"] for e in self.of("exit")}
        return forked - exited


def start_cluster(tmp_path, workers=2, env=None, name="bulwark-server"):
    """Start the example server's primary on a port the kernel picks (PORT=0)
    and wait until `workers` workers listen. Returns (process, port, event
    log); the port comes from the first `listening` event."""
    log = EventLog(str(tmp_path / "events.jsonl"))
    # The fault budget off unless env says: every test's requests come from
    # 127.0.0.1, and most crash workers on purpose (its own tests: M-NN, test_abuse.py).
    full = {"PORT": 0, "WORKERS": workers, "BW_EVENT_LOG": log.path, "CLIENT_FAULT_BUDGET": 0}
    full.update(env or {})
    p = Process([example_binary(name)], env=full, ready_pattern=None)
    p.port = listening_port(log, workers)
    return p, p.port, log


def stop_cluster(p, timeout=20):
    """SIGTERM to the primary; require exit status 0."""
    if p.proc.poll() is None:
        p.signal(signal.SIGTERM)
    code = p.wait(timeout)
    assert code == 0, f"primary exit status {code}:\n{p.output()}"


def listening_port(log, workers):
    """Wait until `workers` workers listen; the port they announced."""
    return log.wait_count("listening", workers)[0]["port"]


# ---- Pipelines, half-closes and storms of fresh connections --------------

def read_responses(sock, timeout=5.0):
    """Every response the server sends on `sock` until it closes it or goes
    quiet for `timeout`: (responses, end), end being "eof", "reset" or
    "timeout" (a response cut short ends the list the same way)."""
    reader = Reader(sock)
    sock.settimeout(timeout)
    out = []
    while True:
        try:
            out.append(reader.response())
        except EOFError:
            return out, "eof"
        except ConnectionResetError:
            return out, "reset"
        except socket.timeout:
            return out, "timeout"
        if reader.eof:
            return out, "eof"


def pipeline(port, requests, half_close=False, timeout=10.0):
    """A connection that sends `requests` (bytes each, see build) in one
    write, shut down for writing afterwards if `half_close`. Returns the
    socket, whose responses read_responses collects."""
    s = connect(port, timeout=timeout)
    s.sendall(b"".join(requests))
    if half_close:
        s.shutdown(socket.SHUT_WR)
    return s


def describe(responses, end):
    """What a connection got, in one line for an assertion's message."""
    got = [f"{r.status} {r.body!r} Connection: {r.header('connection')}" for r in responses]
    return f"{len(responses)} response(s) {got}, then {end}"


class _StormConn:
    """One request on a fresh non-blocking connection (fresh_storm)."""

    def __init__(self, port, path):
        self.path = path
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.out = build(path, headers={"Connection": "close"})
        self.buf = b""
        self.start = time.monotonic()
        self.connected = False
        err = self.sock.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            self.sock.close()
            raise OSError(err, os.strerror(err))

    def status(self):
        """The status once the response is complete, else None."""
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = self.buf[:head_end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v)
        if len(self.buf) < head_end + 4 + length:
            return None
        return int(head[0].split(" ")[1])


def fresh_storm(port, connections, duration, fault_routes, fault_share, seed=1, timeout=5.0):
    """Keep `connections` connections open at once, each carrying exactly one
    request (`Connection: close`) and replaced by a new one when it ends,
    for `duration` seconds; a `fault_share` of the requests go to a fault
    route (in turn), the rest to "/". Waits for what is in flight (each
    request within `timeout`). Returns a tally: per kind ("innocent",
    "fault") the statuses seen and the losses by cause ("eof", "reset",
    "timeout": no complete response), plus connect failures."""
    rng = random.Random(seed)
    sel = selectors.DefaultSelector()
    tally = {"innocent": {}, "fault": {}, "connect_failures": 0, "sent": 0}
    routes = itertools.cycle(fault_routes)
    stop_at = time.monotonic() + duration

    def record(c, outcome):
        kind = "innocent" if c.path == "/" else "fault"
        tally[kind][outcome] = tally[kind].get(outcome, 0) + 1
        sel.unregister(c.sock)
        c.sock.close()

    def connect_failed(c):
        tally["connect_failures"] += 1
        sel.unregister(c.sock)
        c.sock.close()

    def start():
        path = next(routes) if rng.random() < fault_share else "/"
        try:
            c = _StormConn(port, path)
        except OSError:
            tally["connect_failures"] += 1
            return
        sel.register(c.sock, selectors.EVENT_WRITE, c)

    def on_event(c):
        if not c.connected:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                connect_failed(c)
                return False
            c.connected = True
            try:
                c.sock.send(c.out)  # a few dozen bytes: one send on a fresh socket
            except OSError:
                record(c, "reset")
                return False
            tally["sent"] += 1
            sel.modify(c.sock, selectors.EVENT_READ, c)
            return True
        try:
            data = c.sock.recv(65536)
        except OSError:  # a reset, mostly
            record(c, "reset")
            return False
        if data:
            c.buf += data
            status = c.status()
            if status is not None:
                record(c, status)
                return False
            return True
        record(c, "eof")
        return False

    for _ in range(connections):
        start()
    while sel.get_map():
        now = time.monotonic()
        for key, _ in sel.select(0.05):
            if not on_event(key.data) and now < stop_at:
                start()
        for key in list(sel.get_map().values()):
            c = key.data
            if now - c.start > timeout:
                if c.connected:
                    record(c, "timeout")
                else:
                    connect_failed(c)
                if now < stop_at:
                    start()
    return tally


# ---- The service manager's side of sd_notify ------------------------------

class NotifyListener:
    """What systemd is to a Type=notify service: an AF_UNIX datagram socket
    (an abstract name by default, so no path length limit) whose datagrams
    are read with the sender's credentials (SO_PASSCRED), as systemd reads
    them to apply NotifyAccess=main. Each message is (pid, fields, mono)
    with fields a dict of its KEY=VALUE lines and mono the receive time
    (time.monotonic())."""

    def __init__(self, name=None):
        import struct
        self._ucred = struct.Struct("iII")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        if name is None:
            name = f"@bulwark-test-{os.getpid()}-{random.randrange(1 << 30)}"
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)
        self.name = name  # the NOTIFY_SOCKET value
        self.messages = []

    def recv(self, timeout):
        """The next message, or None if none comes within `timeout`."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(self._ucred.size))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = self._ucred.unpack(payload[:self._ucred.size])[0]
        fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
        msg = (pid, fields, time.monotonic())
        self.messages.append(msg)
        return msg

    def wait_for(self, key, value=None, timeout=10.0):
        """Read until a message sets `key` (to `value`, if given); return it."""
        deadline = time.monotonic() + timeout
        while True:
            msg = self.recv(deadline - time.monotonic())
            if msg is None:
                raise AssertionError(f"no {key}={value or '*'} within {timeout}s; got "
                                     f"{[m[1] for m in self.messages]}")
            if key in msg[1] and (value is None or msg[1][key] == value):
                return msg

    def drain(self, quiet=0.2):
        """Every message until none arrives for `quiet` seconds."""
        got = []
        while (msg := self.recv(quiet)) is not None:
            got.append(msg)
        return got

    def close(self):
        self.sock.close()
