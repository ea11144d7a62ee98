"""End-to-end tests of bulwark's HTTP server (issue 3), with real clients
(raw sockets, http.client, curl) on loopback against tests/e2e/http_test_server.

Names: test_H_NN_* cover behaviour H-NN of docs/BEHAVIOURS.md;
test_E_NN_* cover the server's other promises (limits, keep-alive,
pipelining, faults). Every test ends the server gracefully and requires
exit status 0 (under ASan: no leak; always: no handle left open).
"""
import http.client
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from bwtest import Reader, build, connect, no_asan, request, stop_server, wait_until


# ---- H: close semantics ---------------------------------------------------

def test_H_01_close_callback_after_last_connection(server):
    """H-01: the close callback comes only after every connection is gone."""
    p = server()
    a, b = connect(p.port), connect(p.port)
    for s in (a, b):
        s.sendall(build("/"))
        assert Reader(s).response().status == 200
    p.signal(signal.SIGUSR1)
    assert Reader(a).closed() and Reader(b).closed()
    p.wait_for("close-callback status=0 count=1")
    stop_server(p)
    assert p.wait_count("close-callback", 1) and p.count("close-callback") == 1


def test_H_02_close_closes_idle_but_not_partial(server):
    """H-02: close() ends idle connections, not one with a partly received request."""
    p = server()
    partial = connect(p.port)
    partial.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no end of headers
    idle = connect(p.port)
    idle.sendall(build("/"))
    r = Reader(idle).response()
    assert r.status == 200 and r.header("connection") == "keep-alive"
    assert r.raw_head.startswith(b"HTTP/1.1 200 OK\r\n")
    p.signal(signal.SIGUSR1)
    p.wait_for("close first=OK")
    assert Reader(idle).closed(timeout=0.5), "idle keep-alive connection not closed within 500 ms"
    assert not Reader(partial).closed(timeout=0.3), "a partly received request lost its connection"
    # close_all + close: the partial one goes too; the second close reports
    # that a close is already in progress and never calls its callback.
    p.signal(signal.SIGTERM)
    assert Reader(partial).closed()
    p.wait_for("close-all close=BW_ECLOSING")
    stop_server(p)
    assert p.wait_count("close-callback", 1) and p.count("close-callback") == 1


def test_H_03_close_all_connections_destroys_everything(server):
    """H-03: close_all_connections() destroys every connection."""
    p = server()
    partial = connect(p.port)
    partial.sendall(b"GET / HTTP/1.1\r\n")
    idle = connect(p.port)
    idle.sendall(build("/"))
    assert Reader(idle).response().status == 200
    p.signal(signal.SIGTERM)  # close_all_connections(), then close()
    assert Reader(partial).closed(timeout=1.5)
    assert Reader(idle).closed(timeout=1.5)
    p.wait_for("close-all close=OK")
    p.wait_for("close-callback status=0 count=1", timeout=1.5)
    stop_server(p)


def test_H_04_close_idle_does_not_close_waiting_connection(server):
    """H-04: close_idle_connections() never touches a connection waiting for its response."""
    p = server()
    s = connect(p.port)
    s.sendall(build("/slow?ms=1000"))
    time.sleep(0.5)  # the request is in flight: its timing is the scenario itself
    p.signal(signal.SIGUSR2)  # close_idle_connections()
    p.wait_for("closed idle connections")
    r = Reader(s).response()
    assert r.status == 200 and r.body == b"slow ok\n"
    stop_server(p)


def test_H_05_second_close_is_a_clear_status(server):
    """H-05: closing a closed server returns a clear status and does nothing else."""
    p = server()
    assert request(p.port).status == 200
    p.signal(signal.SIGUSR1)
    p.wait_for("close first=OK second=BW_ECLOSING")
    p.wait_for("close-callback status=0 count=1")
    p.wait_for("after-close close=BW_ENOTRUNNING")
    stop_server(p)
    assert p.wait_count("close-callback", 1) and p.count("close-callback") == 1


def test_H_06_close_stops_internal_timers(server):
    """H-06: once closed, no internal timer keeps the loop alive."""
    # Once closed, nothing of the server keeps the loop alive: the process
    # ends by itself, and its loop closes with no handle left.
    p = server(HEADERS_TIMEOUT_MS=60000, KEEPALIVE_MS=60000)
    assert request(p.port).status == 200
    p.signal(signal.SIGUSR1)
    assert p.wait(5) == 0
    assert "exit free=OK loop=OK" in p.output()


def test_H_07_short_keepalive_keeps_pipelined_requests(server):
    """H-07: a short keep-alive timeout never drops pipelined requests."""
    p = server(KEEPALIVE_MS=50)
    s = connect(p.port)
    s.sendall(build("/slow?ms=120") + build("/") + build("/slow?ms=80"))
    rd = Reader(s)
    bodies = [rd.response().body for _ in range(3)]
    assert bodies == [b"slow ok\n", b"ok", b"slow ok\n"]
    stop_server(p)


# Deliberate faults: under UBSan the NULL store is reported (and halts the
# process) before the SIGSEGV it is meant to cause, so this runs only in the
# plain build; the sanitizer build covers the same path through /throw in
# test_E_26.
@no_asan
def test_H_08_per_request_domain_isolates_failures(server):
    """H-08: a per-request domain contains each request's failure."""
    p = server()
    paths = ["/", "/throw", "/", "/segv", "/"]
    results = [request(p.port, path) for path in paths]
    assert [r.status for r in results] == [200, 500, 200, 500, 200]
    assert results[1].header("connection") == "close"
    assert results[0].body == b"ok"
    assert p.wait_count("http: error in request GET /throw", 1) and p.count("http: error in request GET /throw") == 1
    assert p.wait_count("http: error in request GET /segv", 1) and p.count("http: error in request GET /segv") == 1
    stop_server(p)


# ---- E: the server's other promises --------------------------------------

def test_E_01_keepalive_with_curl(server):
    p = server()
    url = f"http://127.0.0.1:{p.port}/"
    out = subprocess.run(["curl", "-sv", url, url], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout == "okok"
    assert "Re-using existing connection" in out.stderr
    stop_server(p)


def test_E_02_head_has_no_body(server):
    p = server()
    s = connect(p.port)
    s.sendall(build("/", method="HEAD") + build("/"))
    rd = Reader(s)
    head = rd.response(head_request=True)
    assert head.status == 200 and head.header("content-length") == "2"
    get = rd.response()  # would be garbled if the HEAD response had a body
    assert get.body == b"ok"
    stop_server(p)


def test_E_03_chunked_upload_with_curl(server, tmp_path):
    p = server()
    data = os.urandom(300000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    dst = tmp_path / "out.bin"
    out = subprocess.run(["curl", "-s", "-H", "Transfer-Encoding: chunked", "--data-binary",
                          f"@{src}", "-o", str(dst), "-w", "%{http_code}",
                          f"http://127.0.0.1:{p.port}/echo"], capture_output=True, text=True,
                         timeout=20)
    assert out.stdout == "200"
    assert dst.read_bytes() == data
    stop_server(p)


def test_E_04_expect_100_continue_with_curl(server, tmp_path):
    p = server()
    data = os.urandom(100000)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    out = subprocess.run(["curl", "-sv", "-H", "Expect: 100-continue", "--data-binary", f"@{src}",
                          "-o", str(tmp_path / "out.bin"), f"http://127.0.0.1:{p.port}/echo-whole"],
                         capture_output=True, text=True, timeout=20)
    assert "< HTTP/1.1 100 Continue" in out.stderr
    assert "< HTTP/1.1 200 OK" in out.stderr
    assert (tmp_path / "out.bin").read_bytes() == data
    stop_server(p)


def test_E_05_pipelined_responses_in_order(server):
    p = server()
    s = connect(p.port)
    s.sendall(build("/slow?ms=150") + build("/headers", headers={"X-Test": "2"}) + build("/"))
    rd = Reader(s)
    first, second, third = rd.response(), rd.response(), rd.response()
    assert first.body == b"slow ok\n"
    assert b"lookup x-test: 2" in second.body
    assert third.body == b"ok"
    stop_server(p)


def test_E_06_chunked_response(server):
    p = server()
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=5)
    conn.request("GET", "/chunked?n=5")
    r = conn.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked"
    assert r.read() == b"".join(b"piece %d\n" % i for i in range(5))
    conn.close()
    stop_server(p)


def test_E_07_repeated_headers_and_case_insensitive_lookup(server):
    p = server()
    s = connect(p.port)
    s.sendall(b"GET /headers?x=1 HTTP/1.1\r\nHost: t\r\nX-Test: first\r\nx-test: second\r\n\r\n")
    r = Reader(s).response()
    assert b"X-Test: first\nx-test: second\n" in r.body
    assert b"lookup x-test: first | second: second" in r.body
    stop_server(p)


def expect_error_and_close(port, payload, status):
    s = connect(port)
    s.sendall(payload)
    rd = Reader(s)
    r = rd.response()
    assert r.status == status, r
    assert r.header("connection") == "close"
    assert rd.closed()
    s.close()


def test_E_08_head_too_large_is_431(server):
    p = server(MAX_HEAD=1024)
    expect_error_and_close(p.port, build("/", headers={"X-Big": "a" * 2000}), 431)
    assert p.wait_count("http: 431 head too large", 1) and p.count("http: 431 head too large") == 1
    assert request(p.port).status == 200  # the server goes on
    stop_server(p)


def test_E_09_body_too_large_is_413(server):
    p = server(MAX_BODY=1000)
    expect_error_and_close(p.port, build("/echo", method="POST", headers={"Content-Length": "5000"}),
                           413)
    chunked = (b"POST /echo-whole HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"400\r\n" + b"a" * 1024 + b"\r\n")
    expect_error_and_close(p.port, chunked, 413)
    assert p.wait_count("http: 413 body too large", 2) and p.count("http: 413 body too large") == 2
    stop_server(p)


def test_E_10_headers_timeout_is_408(server):
    p = server(HEADERS_TIMEOUT_MS=300)
    s = connect(p.port)
    s.sendall(b"GET / HTTP/1.1\r\nHost: slowloris\r\n")
    t0 = time.monotonic()
    rd = Reader(s)
    r = rd.response()
    assert r.status == 408 and r.header("connection") == "close"
    assert 0.25 <= time.monotonic() - t0 < 3
    assert rd.closed()
    assert p.wait_count("http: 408 request head", 1) and p.count("http: 408 request head") == 1
    stop_server(p)


def test_E_11_request_timeout_is_408(server):
    p = server(REQUEST_TIMEOUT_MS=400)
    s = connect(p.port)
    s.sendall(b"POST /echo-whole HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
    rd = Reader(s)
    r = rd.response()
    assert r.status == 408
    assert rd.closed()
    assert p.wait_count("http: 408 request body", 1) and p.count("http: 408 request body") == 1
    stop_server(p)


def test_E_12_keepalive_idle_timeout(server):
    p = server(KEEPALIVE_MS=200)
    s = connect(p.port)
    s.sendall(build("/"))
    rd = Reader(s)
    assert rd.response().status == 200
    t0 = time.monotonic()
    assert rd.closed(timeout=3)
    assert 0.15 <= time.monotonic() - t0 < 2.5
    stop_server(p)


def test_E_13_max_connections_refused_with_503(server):
    p = server(MAX_CONNS=2)
    a, b = connect(p.port), connect(p.port)
    for s in (a, b):
        s.sendall(build("/"))
        assert Reader(s).response().status == 200
    c = connect(p.port)
    rc = Reader(c)
    r = rc.response()
    assert r.status == 503
    assert rc.closed()
    p.wait_for("http: 503 refused")
    a.close()
    # Once a connection is gone, new ones are served again.
    assert wait_until(lambda: request(p.port).status == 200, timeout=5)
    stop_server(p)


MALFORMED = {
    "bad method char": b"G(T / HTTP/1.1\r\nHost: t\r\n\r\n",
    "bad version": b"GET / HTTP/9.x\r\nHost: t\r\n\r\n",
    "CL and TE": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two different CL": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n  folded\r\n\r\n",
    "control char in header": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
    "bad chunk size": b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "invalid header name": b"GET / HTTP/1.1\r\nHost: t\r\nX[A]: 1\r\n\r\n",
    "NUL in target": b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_E_14_malformed_is_400(server, case):
    p = server()
    expect_error_and_close(p.port, MALFORMED[case], 400)
    assert p.wait_count("http: 400 malformed request", 1) and p.count("http: 400 malformed request") == 1
    assert request(p.port).status == 200
    stop_server(p)


@no_asan  # a deliberate fault: see test_H_08
def test_E_15_fault_in_timer_costs_one_500(server):
    p = server()
    slow = connect(p.port)
    slow.sendall(build("/slow?ms=400"))
    r = request(p.port, "/segv-timer")
    assert r.status == 500 and r.header("connection") == "close"
    s = Reader(slow).response()
    assert s.status == 200 and s.body == b"slow ok\n"
    out = p.output()
    assert "SIGSEGV" in out and "origin: fault" in out
    stop_server(p)


def test_E_16_error_after_headers_resets(server):
    p = server()
    s = connect(p.port)
    s.sendall(build("/headers-then-fault"))
    rd = Reader(s)
    with pytest.raises((ConnectionResetError, EOFError)):
        rd.response()  # Content-Length 100 announced, 7 bytes sent: never a success
    stop_server(p)


def test_E_17_graceful_close_loses_nothing(server):
    p = server()
    slow = connect(p.port)
    slow.sendall(build("/slow?ms=600"))
    idle = []
    for _ in range(3):
        s = connect(p.port)
        s.sendall(build("/"))
        assert Reader(s).response().status == 200
        idle.append(s)
    time.sleep(0.1)  # let the slow request be in flight when the close begins
    p.signal(signal.SIGUSR1)
    p.wait_for("close first=OK second=BW_ECLOSING")
    for s in idle:
        assert Reader(s).closed(timeout=2)
    r = Reader(slow).response()
    assert r.status == 200 and r.body == b"slow ok\n"
    assert r.header("connection") == "close"
    p.wait_for("close-callback status=0 count=1")
    stop_server(p)
    assert p.wait_count("close-callback", 1) and p.count("close-callback") == 1


def test_E_18_request_on_closing_idle_connection_is_served(server):
    # The race of nginx PR #437 / gunicorn #1236: a request that reaches an
    # idle keep-alive connection just as the server closes it.
    p = server(GRACE_MS=1000)
    s = connect(p.port)
    s.sendall(build("/"))
    rd = Reader(s)
    assert rd.response().status == 200
    p.signal(signal.SIGUSR1)
    p.wait_for("close first=OK")
    s.sendall(build("/"))
    r = rd.response()
    assert r.status == 200 and r.body == b"ok"
    assert r.header("connection") == "close"
    assert rd.closed()
    stop_server(p)


def test_E_19_backpressure_slow_reader(server):
    p = server(MAX_OUTPUT=65536)
    base = p.rss_kb()
    slow = connect(p.port)
    slow.sendall(build("/big?bytes=20000000"))
    time.sleep(0.5)  # the client reads nothing for a while: that is the scenario
    assert request(p.port).status == 200  # others are still served
    grown = p.rss_kb() - base
    assert grown < 8000, f"RSS grew {grown} kB: the server buffered what the client did not read"
    total = 0
    rd = Reader(slow)
    r = rd.response()
    total = len(r.body)
    assert total == 20000000
    stop_server(p)


def test_E_20_ipv6(server):
    p = server(LISTEN6=1)
    r = request(p.port, host="::1")
    assert r.status == 200 and r.body == b"ok"
    stop_server(p)


def test_E_21_connection_close_both_ways(server):
    p = server()
    s = connect(p.port)
    s.sendall(build("/", headers={"Connection": "close"}))
    rd = Reader(s)
    r = rd.response()
    assert r.header("connection") == "close" and rd.closed()
    s = connect(p.port)
    s.sendall(build("/close"))
    rd = Reader(s)
    r = rd.response()
    assert r.body == b"bye" and r.header("connection") == "close" and rd.closed()
    stop_server(p)


def test_E_22_no_descriptor_leak(server):
    p = server(HEADERS_TIMEOUT_MS=200)
    before = p.open_fds()  # no connection yet
    for i in range(50):
        s = connect(p.port)
        s.sendall(MALFORMED[sorted(MALFORMED)[i % len(MALFORMED)]])
        s.close()
        request(p.port)
        s = connect(p.port)  # connects and says nothing: cut by the headers timeout
        s.close()
    assert wait_until(lambda: p.open_fds() == before, timeout=5), (before, p.open_fds())
    stop_server(p)


def test_E_23_http10_keepalive_rules(server):
    p = server()
    s = connect(p.port)
    s.sendall(build("/", version="HTTP/1.0"))
    rd = Reader(s)
    r = rd.response()
    assert r.header("connection") == "close" and rd.closed()
    s = connect(p.port)
    s.sendall(build("/", headers={"Connection": "keep-alive"}, version="HTTP/1.0"))
    rd = Reader(s)
    assert rd.response().header("connection") == "keep-alive"
    s.sendall(build("/", headers={"Connection": "keep-alive"}, version="HTTP/1.0"))
    assert rd.response().body == b"ok"
    stop_server(p)


def test_E_24_concurrent_clients(server):
    p = server()
    errors = []

    def client():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            for _ in range(200):
                conn.request("GET", "/")
                r = conn.getresponse()
                if r.status != 200 or r.read() != b"ok":
                    errors.append(r.status)
            conn.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stop_server(p)


def test_E_25_lingering_close_never_resets_the_response(server):
    # The client pipelines more after a request that closes the connection:
    # the server must not reset (which could destroy the response in the
    # client's receive buffer); it shuts its side down and drains the rest.
    p = server(LINGER_MS=3000)
    s = connect(p.port)
    s.sendall(build("/close") + build("/") * 50)
    time.sleep(0.2)  # the server has answered and shut down its side meanwhile
    rd = Reader(s)
    r = rd.response()
    assert r.body == b"bye" and r.header("connection") == "close"
    assert rd.closed()  # EOF, not a reset
    s.sendall(b"x" * 1000)  # still accepted and discarded: no RST
    s.close()
    stop_server(p)


def test_E_26_thrown_error_costs_one_500(server):
    p = server()
    slow = connect(p.port)
    slow.sendall(build("/slow?ms=300"))
    results = [request(p.port, path) for path in ["/", "/throw", "/", "/throw", "/"]]
    assert [r.status for r in results] == [200, 500, 200, 500, 200]
    assert Reader(slow).response().status == 200
    assert p.wait_for("thrown by the handler")
    stop_server(p)


def test_E_27_send_timeout_resets_a_client_that_stops_reading(server):
    p = server(SEND_TIMEOUT_MS=500, MAX_OUTPUT=65536)
    before = p.open_fds()
    s = connect(p.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(build("/big?bytes=50000000"))
    t0 = time.monotonic()
    assert p.wait_count("took none of its response for 500 ms", 1, timeout=10)
    assert 0.4 < time.monotonic() - t0 < 5
    assert wait_until(lambda: p.open_fds() == before, timeout=5)
    assert request(p.port).status == 200
    s.close()
    stop_server(p)


def test_E_28_first_request_gets_one_headers_timeout(server):
    # The clock starts at the accept: waiting, then sending half a head,
    # does not buy a second timeout.
    p = server(HEADERS_TIMEOUT_MS=800)
    s = connect(p.port)
    t0 = time.monotonic()
    time.sleep(0.5)  # an idle client before its first byte: the scenario
    s.sendall(b"GET / HTTP/1.1\r\n")
    r = Reader(s).response()
    took = time.monotonic() - t0
    assert r.status == 408
    assert 0.7 < took < 1.2, f"408 after {took:.2f}s: the first byte restarted the clock"
    s.close()
    stop_server(p)


def test_E_29_response_timeout_is_an_error_in_the_requests_domain(server):
    # RESPONSE_TIMEOUT_MS: a handler that never answers gets an error
    # (origin timeout) in the domain that owns its request, once; the
    # default hook answers 500 and closes, or resets a response already
    # started; a request answered in time is untouched.
    p = server(RESPONSE_TIMEOUT_MS=300)
    in_time, hold, stall, manual = (connect(p.port) for _ in range(4))
    t0 = time.monotonic()
    in_time.sendall(build("/slow?ms=150"))
    hold.sendall(build("/hold"))
    stall.sendall(build("/stall"))
    manual.sendall(build("/manual-hold"))

    r = Reader(in_time).response()
    assert r.status == 200 and r.header("connection") == "keep-alive"

    r = Reader(hold).response()
    elapsed = time.monotonic() - t0
    assert r.status == 500 and r.header("connection") == "close", r
    assert 0.3 <= elapsed < 5, elapsed
    assert Reader(hold).closed()

    # Headers and a first chunk went out: a truncated body must never look
    # complete, so the connection ends without the last chunk.
    got = b""
    try:
        while True:
            data = stall.recv(65536)
            if not data:
                break
            got += data
    except ConnectionResetError:
        pass
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n7\r\npartial\r\n" in got, got
    assert not got.endswith(b"0\r\n\r\n"), got

    # The seed's manual pattern: the handler's own domain gets it.
    r = Reader(manual).response()
    assert r.status == 500
    assert r.body == b"manual domain: no response to GET /manual-hold within 300 ms (origin timeout)\n"

    # The server's log comes through a pipe: wait for it, then count.
    assert p.wait_count("no response within 300 ms", 3), p.output()
    for path in ("/hold", "/stall", "/manual-hold"):
        assert p.count(f"GET {path} from 127.0.0.1") == 1, p.output()
    assert p.count("no response within 300 ms") == 3
    # The connection that was answered in time still serves.
    in_time.sendall(build("/"))
    assert Reader(in_time).response().body == b"ok"
    for s in (in_time, hold, stall, manual):
        s.close()
    stop_server(p)


def test_E_30_response_timeout_off_by_default_and_without_domains(server):
    # Off by default: long polls and streams are legitimate.
    p = server()
    s = connect(p.port)
    s.sendall(build("/hold"))
    s.settimeout(1.0)
    with pytest.raises(socket.timeout):
        s.recv(1)
    s.close()
    # A graceful close would wait for that request for ever: close all.
    stop_server(p, sig=signal.SIGTERM)
    # With no domain per request and none of the handler's, the server's
    # hook gets the error directly.
    p = server(RESPONSE_TIMEOUT_MS=200, DOMAIN_PER_REQUEST=0)
    r = request(p.port, "/hold")
    assert r.status == 500 and r.header("connection") == "close"
    assert p.wait_count("no response to GET /hold within 200 ms", 1)
    assert request(p.port).body == b"ok"
    stop_server(p)


def test_E_31_decoded_path_and_query_parameters(server):
    """Issue 14, decoding: bw_http_request_path_decoded and
    bw_http_request_query_param through a real request (the rules
    themselves: tests/unit/test_decode.c). An encoded '/' or an invalid
    escape in the path is BW_EPROTO, the raw path still served; '+' is a
    space in the query; repeated names come in order; an absent one is
    ENOENT; the absolute-form's path is the path."""
    p = server()
    r = request(p.port, "/decode/caf%C3%A9%20x?q=a+b&z=1&q=%2F")
    assert r.status == 200, r
    assert r.body.decode().splitlines() == ["path OK [/decode/caf\u00e9 x]", "q0 OK [a b]",
                                            "q1 OK [/]"], r.body
    r = request(p.port, "/decode/a%2Fb?z=1")
    assert r.body.decode().splitlines() == ["path BW_EPROTO []", "q0 ENOENT []", "q1 ENOENT []"], r.body
    r = request(p.port, "/decode/%zz?q=%00")
    assert r.body.decode().splitlines()[:2] == ["path BW_EPROTO []", "q0 BW_EPROTO []"], r.body
    s = connect(p.port)
    s.sendall(b"GET http://h.example/decode/x?q=1 HTTP/1.1\r\nHost: h.example\r\n\r\n")
    r = Reader(s).response()
    assert r.body.decode().splitlines()[0:2] == ["path OK [/decode/x]", "q0 OK [1]"], r.body


def test_E_32_finished_hook_sees_every_handled_request_once(server):
    """Issue 14, the response-finished hook (bw_http_server_on_finished):
    once per request whose handler ran, with its status, body bytes and
    outcome: answered, faulted (a throw; a fault after the head went out,
    then a reset), aborted (the client left before the answer); a request
    refused before any handler (400) does not come."""
    p = server(FINISHED_LOG=1)
    assert request(p.port, "/").status == 200
    assert request(p.port, "/throw").status == 500
    s = connect(p.port)
    s.sendall(build("/headers-then-fault"))
    with pytest.raises((EOFError, ConnectionError)):
        Reader(s).response()
    s.close()
    s = connect(p.port)
    s.sendall(build("/slow?ms=300"))
    time.sleep(0.05)  # in flight when the client leaves: the scenario
    # A reset, not a FIN: a client that only half-closes is still answered.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    s = connect(p.port)
    s.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400, no handler
    assert Reader(s).response().status == 400
    s.close()
    assert p.wait_for("finished GET /slow?ms=300 ", 5.0)
    lines = [l for l in p.output().splitlines() if l.startswith("finished ")]
    assert lines == [
        "finished GET / status=200 bytes=2 outcome=answered peer-ok=1",
        "finished GET /throw status=500 bytes=22 outcome=faulted peer-ok=1",
        lines[2],
        "finished GET /slow?ms=300 status=0 bytes=0 outcome=aborted peer-ok=1",
    ], lines
    assert lines[2].startswith("finished GET /headers-then-fault status=200 ") and \
        lines[2].endswith("outcome=faulted peer-ok=1"), lines  # the peer survives the reset
