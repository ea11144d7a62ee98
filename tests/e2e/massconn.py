"""Many keep-alive connections from one selector loop (R-07 and
bench/handoff-move): open them, each after one GET /pid (so that it is
not fresh and says which worker holds it), ask each again, all at once;
and a keep-alive client that measures its latency in a thread.
"""
import errno
import os
import resource
import selectors
import socket
import threading
import time

from bwtest import build


def raise_nofile(need):
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it);
    returns the hard limit, to compare with `need`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def _response(buf):
    """(status, body, rest) once a whole response (Content-Length) is in buf."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].decode("latin-1").split("\r\n")
    length = 0
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    if len(buf) < end + 4 + length:
        return None
    return int(head[0].split(" ")[1]), buf[end + 4:end + 4 + length], buf[end + 4 + length:]


class _C:
    __slots__ = ("sock", "buf", "pid", "outcome", "connected")

    def __init__(self, sock):
        self.sock, self.buf, self.pid, self.outcome, self.connected = sock, b"", None, None, False


def _exchange(sel, pending, timeout):
    """Read until every registered connection has its response (outcome
    (status, body)) or `timeout`; outcome "eof"/"reset"/"timeout" else."""
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(min(0.1, max(0.0, deadline - time.monotonic()))):
            c = key.data
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    c.outcome = "connect: " + os.strerror(err)
                    sel.unregister(c.sock)
                    pending.discard(c)
                    continue
                c.connected = True
                c.sock.send(build("/pid"))  # a few dozen bytes: one send
                sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = None
            if not data:
                c.outcome = "eof" if data == b"" else "reset"
            else:
                c.buf += data
                r = _response(c.buf)
                if r is None:
                    continue
                c.outcome = (r[0], r[1])
                c.buf = r[2]
            sel.unregister(c.sock)
            pending.discard(c)
    for c in pending:
        c.outcome = "timeout"
        sel.unregister(c.sock)


def open_many(port, n, wave=256, timeout=10.0, keep=None):
    """n connections, each after one GET /pid answered; [(sock, pid)].
    keep(pid) -> bool: a connection whose worker it refuses is closed and
    another opened instead (to gather n on one worker); the total opened is
    bounded by 4n + 100. Raises on any failure."""
    out = []
    opened = 0
    sel = selectors.DefaultSelector()
    while len(out) < n:
        if opened > 4 * n + 100:
            raise AssertionError(f"opened {opened} connections, {len(out)} kept")
        batch = set()
        for _ in range(min(wave, n - len(out))):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                raise OSError(err, os.strerror(err))
            c = _C(s)
            sel.register(s, selectors.EVENT_WRITE, c)
            batch.add(c)
            opened += 1
        wanted = list(batch)
        _exchange(sel, batch, timeout)
        for c in wanted:
            if not (isinstance(c.outcome, tuple) and c.outcome[0] == 200):
                raise AssertionError(f"opening: {c.outcome!r}")
            pid = int(c.outcome[1])
            if keep is None or keep(pid):
                out.append((c.sock, pid))
            else:
                c.sock.close()
    sel.close()
    return out


def ask_all(socks, timeout=20.0, path="/pid"):
    """GET path on each (kept) socket at once; the outcomes in order:
    (status, body) or "eof", "reset", "timeout", "send: ..."."""
    sel = selectors.DefaultSelector()
    cs = []
    pending = set()
    req = build(path)
    for s in socks:
        c = _C(s)
        c.connected = True
        cs.append(c)
        try:
            s.send(req)
        except OSError as e:
            c.outcome = f"send: {e!r}"
            continue
        sel.register(s, selectors.EVENT_READ, c)
        pending.add(c)
    _exchange(sel, pending, timeout)
    sel.close()
    return [c.outcome for c in cs]


class Prober(threading.Thread):
    """One keep-alive connection (on the worker `want_pid` if given: opened
    again until the kernel puts it there) asking GET / back to back until
    stop(); latencies (s) and failures kept."""

    def __init__(self, port, want_pid=None, timeout=5.0):
        super().__init__(daemon=True)
        keep = None if want_pid is None else (lambda pid: pid == want_pid)
        self.sock, self.pid = open_many(port, 1, wave=1, keep=keep)[0]
        self.sock.setblocking(True)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.lat = []
        self.sent_ns = []  # CLOCK_MONOTONIC, as the primary's event log
        self.failures = []
        self.halt = threading.Event()

    def run(self):
        req = build("/")
        while not self.halt.is_set():
            t_ns = time.monotonic_ns()
            t = time.monotonic()
            try:
                self.sock.sendall(req)
                buf = b""
                while True:
                    data = self.sock.recv(65536)
                    if not data:
                        raise EOFError("eof")
                    buf += data
                    r = _response(buf)
                    if r is not None:
                        break
            except (OSError, EOFError) as e:
                self.failures.append(repr(e))
                return
            self.lat.append(time.monotonic() - t)
            self.sent_ns.append(t_ns)
            if r[0] != 200 or r[1] != b"ok":
                self.failures.append(f"status {r[0]} body {r[1]!r}")

    def stop(self):
        self.halt.set()
        self.join(10)
        self.sock.close()


def quantile(xs, q):
    if not xs:
        return float("nan")
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(q * len(ys)))]
