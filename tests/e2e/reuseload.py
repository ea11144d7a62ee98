"""A keep-alive load that reuses its connections after random idle times,
written once for every test that must show that no request on a reused
connection is lost while processes come and go (test_handoff.py's R-*,
test_upgrade.py's G-*). Its tally is explained in ReuseLoad's docstring
and in test_handoff.py's.
"""
import itertools
import random
import selectors
import socket
import time

from bwtest import build

CLIENTS = 40
IDLE_MAX_S = 0.2
REQUEST_TIMEOUT_S = 5.0

# What each kind of request must get back: the routes answer the same body
# whatever the query, and different bodies between them, so a response that
# belongs to another request (or another connection) shows.
KINDS = {
    "get": (lambda n: build(f"/?n={n}"), b"ok"),
    "post": (lambda n: build(f"/?n={n}", method="POST", body=b"b%d=" % n + b"x" * (n % 64)), b"ok"),
    "slow": (lambda n: build(f"/slow?ms=1&n={n}"), b"slow ok\n"),
}
KIND_WEIGHTS = [("get", 4), ("post", 4), ("slow", 1)]


class _Conn:
    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(REQUEST_TIMEOUT_S)
        self.sock.connect(("127.0.0.1", port))  # loopback: immediate
        self.sock.setblocking(False)
        self.done = 0  # requests answered on this connection
        self.buf = b""
        self.kind = None
        self.sent_at = None
        self.wake_at = 0.0


def _parse(buf):
    """(status, headers dict, body, rest) once a whole response is in buf,
    else None; raises ValueError on bytes that are no HTTP/1.1 response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 16384:
            raise ValueError("no end of head in 16 KiB")
        return None
    lines = buf[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"bad status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, sep, v = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line!r}")
        headers[k.strip().lower()] = v.strip()
    if "transfer-encoding" in headers:
        raise ValueError("chunked response: not expected from these routes")
    length = int(headers.get("content-length", "0"))
    if len(buf) < end + 4 + length:
        return None
    body = buf[end + 4:end + 4 + length]
    return int(parts[1]), headers, body, buf[end + 4 + length:]


class ReuseLoad:
    """CLIENTS keep-alive connections, each idling a random 0-200 ms
    (seeded) between requests, for `duration` seconds; then what is in
    flight gets REQUEST_TIMEOUT_S. run() returns the tally."""

    def __init__(self, port, duration, seed=13):
        self.port = port
        self.duration = duration
        self.rng = random.Random(seed)
        self.sel = selectors.DefaultSelector()
        self.serial = itertools.count(1)
        kinds = [k for k, w in KIND_WEIGHTS for _ in range(w)]
        self.next_kind = lambda: self.rng.choice(kinds)
        self.t = {
            "reused_sent": 0, "reused_ok": 0, "lost_eof": 0, "lost_reset": 0,
            "first_sent": 0, "first_ok": 0, "first_lost": 0,
            "close_responses": 0, "idle_closed": 0, "connects": 0, "connect_failures": 0,
            "other": 0,
        }
        self.other = []  # descriptions of the "other" outcomes (first few)
        self.idle = []   # connections idling

    def _anomaly(self, c, what):
        self.t["other"] += 1
        if len(self.other) < 10:
            self.other.append(f"{'reused' if c.done else 'first'} {c.kind}: {what}")

    def _open(self):
        try:
            c = _Conn(self.port)
        except OSError as e:
            self.t["connect_failures"] += 1
            if len(self.other) < 10:
                self.other.append(f"connect failed: {e!r}")
            return None
        self.t["connects"] += 1
        return c

    def _drop(self, c, watched):
        if watched:
            self.sel.unregister(c.sock)
        c.sock.close()

    def _replace(self, now):
        """A new connection in place of one that ended; its first request
        goes out at once."""
        if now < self.stop_at:
            c = self._open()
            if c is not None:
                self._send(c, now)

    def _send(self, c, now):
        c.kind = self.next_kind()
        data = KINDS[c.kind][0](next(self.serial))
        self.t["reused_sent" if c.done else "first_sent"] += 1
        c.sent_at = now
        try:
            c.sock.send(data)  # a few hundred bytes on an empty socket: one send
        except (ConnectionResetError, BrokenPipeError):
            self._lost(c, "lost_reset", now, watched=False)
            return
        except BlockingIOError:
            self._anomaly(c, "send would block")
            self._drop(c, watched=False)
            self._replace(now)
            return
        self.sel.register(c.sock, selectors.EVENT_READ, c)

    def _lost(self, c, how, now, watched=True):
        if c.done:
            self.t[how] += 1
        else:
            self.t["first_lost"] += 1
            if len(self.other) < 10:
                self.other.append(f"first {c.kind}: {how}")
        self._drop(c, watched)
        self._replace(now)

    def _on_read(self, c, now):
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = None
        if not data:
            if c.buf:
                self._anomaly(c, f"connection ended inside a response ({len(c.buf)} bytes)")
                self._drop(c, watched=True)
                self._replace(now)
            else:
                self._lost(c, "lost_eof" if data == b"" else "lost_reset", now)
            return
        c.buf += data
        try:
            parsed = _parse(c.buf)
        except ValueError as e:
            self._anomaly(c, f"garbage: {e} {c.buf[:80]!r}")
            self._drop(c, watched=True)
            self._replace(now)
            return
        if parsed is None:
            return
        status, headers, body, rest = parsed
        want = KINDS[c.kind][1]
        good = status == 200 and body == want and not rest
        if not good:
            self._anomaly(c, f"status {status} body {body!r} (want {want!r}), "
                             f"{len(rest)} bytes after it")
        elif c.done:
            self.t["reused_ok"] += 1
        else:
            self.t["first_ok"] += 1
        c.done += 1
        c.buf = b""
        self.sel.unregister(c.sock)
        if not good or headers.get("connection", "").lower() == "close":
            if good:
                self.t["close_responses"] += 1
            c.sock.close()
            self._replace(now)
            return
        c.wake_at = now + self.rng.uniform(0.0, IDLE_MAX_S)
        self.idle.append(c)

    def _wake(self, c, now):
        """Reuse an idle connection, as a client that does not check it
        first does. A peek first only tells, for the tally, whether the
        server had closed it already ("idle_closed": a pool that checks
        would have reconnected; these are counted lost all the same when
        the request then meets EOF) or the FIN comes after the request."""
        try:
            peek = c.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            peek = None
        except ConnectionResetError:
            peek = b""
        if peek == b"":
            self.t["idle_closed"] += 1
        elif peek is not None:
            self._anomaly(c, "bytes the client never asked for on an idle connection")
            c.sock.close()
            self._replace(now)
            return
        self._send(c, now)

    def run(self):
        start = time.monotonic()
        self.stop_at = start + self.duration
        hard_end = self.stop_at + REQUEST_TIMEOUT_S + 1.0
        for _ in range(CLIENTS):
            c = self._open()
            if c is not None:
                self._send(c, start)
        while True:
            now = time.monotonic()
            if now >= hard_end:
                break
            if now < self.stop_at:
                still = []
                for c in self.idle:
                    if c.wake_at <= now:
                        self._wake(c, now)
                    else:
                        still.append(c)
                self.idle = still
            elif not self.sel.get_map():
                break
            nxt = min((c.wake_at for c in self.idle), default=now + 0.05) if now < self.stop_at \
                else now + 0.05
            for key, _ in self.sel.select(max(0.0, min(nxt - now, 0.05))):
                self._on_read(key.data, time.monotonic())
            now = time.monotonic()
            for key in list(self.sel.get_map().values()):
                c = key.data
                if now - c.sent_at > REQUEST_TIMEOUT_S:
                    self._anomaly(c, "timeout")
                    self._drop(c, watched=True)
        for key in list(self.sel.get_map().values()):
            self._anomaly(key.data, "still unanswered at the hard deadline")
            self._drop(key.data, watched=True)
        for c in self.idle:
            c.sock.close()
        self.t["elapsed_s"] = round(time.monotonic() - start, 2)
        return self.t

    def summary(self):
        lost = self.t["lost_eof"] + self.t["lost_reset"]
        per_k = 1000.0 * lost / max(1, self.t["reused_sent"])
        return (f"reuse load: {self.t}; lost on reused connections {lost} "
                f"({per_k:.1f} per 1,000); other outcomes: {self.other}")
