"""M. Abusive clients (issue 16, section 4): the quarantine keys on the
whole request first and widens to its path or route only when crashes
spread over several requests of it; bw_cluster_lift_quarantine lifts it;
a client whose requests crash workers is answered 429 for a while.

The clients here bind their sockets to 127.0.0.2 or 127.0.0.1 before they
connect: the whole 127/8 range is local, and the server sees two clients.
"""
import socket
import time

from bwtest import Reader, build, no_asan, request, start_cluster, stop_cluster, wait_until
from test_cluster_behaviours import app, primary_port, wait_event  # noqa: F401 (a fixture)

DEADLINE = 15.0


def request_from(source, port, path="/", timeout=10.0):
    """One request on a fresh connection from the address `source`."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(build(path))
        return Reader(s).response()
    finally:
        s.close()


def crash(port, path, log, listening, source="127.0.0.1"):
    """`path` crashes a worker (500), and its replacement listens (the
    listening events reach `listening`)."""
    r = request_from(source, port, path)
    assert r.status == 500, r
    log.wait_count("listening", listening)


def events(p, name):
    """The test app's lines for events `name`."""
    return [l for l in p.output().splitlines() if l.startswith(f"event {name} ")]


@no_asan
def test_M_41_one_bad_input_quarantines_that_request_only(cluster):
    # A query that crashes /parse three times quarantines that request, not
    # the route: /parse with another query is served.
    p, port, log = cluster(workers=2, POISON_THRESHOLD=3, QUARANTINE_MS=60000)
    for i in range(3):
        crash(port, "/parse?input=bad", log, 3 + i)
    assert p.wait_count('quarantined "GET /parse?input=bad"', 1)
    (q,) = log.wait_count("quarantine", 1)
    assert (q["kind"], q["key"]) == ("request", "GET /parse?input=bad"), q
    r = request(port, "/parse?input=bad")
    assert r.status == 503 and 50 <= int(r.header("retry-after")) <= 60, r
    r = request(port, "/parse?input=good")
    assert (r.status, r.body) == (200, b"parsed\n"), r
    assert [e["request"] for e in log.of("retiring")] == ["GET /parse?input=bad"] * 3
    assert len(log.of("quarantine")) == 1
    stop_cluster(p)


@no_asan
def test_M_42_crashes_over_several_queries_widen_to_the_path(cluster):
    # Varying the query does not dodge the quarantine: three distinct
    # crashing queries of /parse quarantine the path, every query of it.
    p, port, log = cluster(workers=2, POISON_THRESHOLD=3, QUARANTINE_MS=60000)
    for i in range(3):
        crash(port, "/parse?bad=%d" % i, log, 3 + i)
    assert p.wait_count('quarantined "GET /parse"', 1)
    (q,) = log.wait_count("quarantine", 1)
    assert (q["kind"], q["key"]) == ("path", "GET /parse"), q
    for path in ("/parse?bad=99", "/parse?input=good", "/parse"):
        assert request(port, path).status == 503, path
    assert request(port, "/").body == b"ok"
    assert len(log.of("retiring")) == 3
    stop_cluster(p)


@no_asan
def test_M_43_crashes_over_several_ids_widen_to_the_route(tmp_path):
    # Behind the router the path carries the id: two ids of /bugs/:id
    # crashing quarantine the route, so a third id is answered 503 (the
    # service's own JSON) without reaching its handler; other routes serve.
    p, port, log = start_cluster(tmp_path, 2, {"POISON_THRESHOLD": 2, "QUARANTINE_MS": 60000},
                                 name="json-service")
    try:
        for i in range(2):
            assert request(port, "/bugs/%d" % i).status == 500
            log.wait_count("listening", 3 + i)
        (q,) = log.wait_count("quarantine", 1)
        assert (q["kind"], q["key"]) == ("route", "GET /bugs/:id"), q
        r = request(port, "/bugs/12345")
        assert (r.status, r.header("content-type")) == (503, "application/json"), r
        assert request(port, "/health").status == 200
        assert len(log.of("retiring")) == 2
        stop_cluster(p)
    finally:
        p.kill()


@no_asan
def test_M_44_the_lift_api_ends_quarantines_in_every_worker(app):
    # bw_cluster_lift_quarantine, called by the primary when a worker asks
    # (the test app's /lift): one key, then all; the handler runs again,
    # and the crash count behind the key started again from zero.
    p = app("quarantine-lift", MODE="serve", POISON_THRESHOLD=2, KILL_TIMEOUT_MS=2000)
    port = primary_port(p)
    listening = 1
    wait_event(p, "listening", listening)

    def crash_twice(path):
        nonlocal listening
        for _ in range(2):
            assert request(port, path, timeout=DEADLINE).status == 500
            listening += 1
            wait_event(p, "listening", listening)

    crash_twice("/throw?a=1")
    wait_event(p, "quarantine", 1)
    assert request(port, "/throw?a=1").status == 503
    assert request(port, "/lift?GET+/throw?a=1").status == 200
    assert p.wait_for("primary lifted key=GET /throw?a=1 n=1 active=0", DEADLINE)
    # Lifted: the handler runs (and crashes) again; one crash is not two.
    crash_twice("/throw?a=1")
    wait_event(p, "quarantine", 2)
    assert request(port, "/throw?a=1").status == 503
    assert request(port, "/lift").status == 200
    assert p.wait_for("primary lifted key=(all) n=1 active=0", DEADLINE)
    assert request(port, "/throw?a=1").status == 500
    assert len(events(p, "quarantine")) == 2


@no_asan
def test_M_45_a_client_that_crashes_workers_is_answered_429_for_a_while(cluster):
    # 127.0.0.2 crashes three workers with three different paths (no
    # quarantine catches that: quarantine is off here, and the paths
    # differ): it is blocked, its requests answered 429 with Retry-After
    # before any handler runs, while 127.0.0.1 is served; after
    # CLIENT_BLOCK_MS it is served again. Each 429 goes CLIENT_BLOCK_DELAY_MS
    # late (a client looping on them is slowed down).
    p, port, log = cluster(workers=2, CLIENT_FAULT_BUDGET=3, CLIENT_FAULT_WINDOW_MS=10000,
                           CLIENT_BLOCK_MS=1500, CLIENT_BLOCK_DELAY_MS=200)
    for i in range(3):
        crash(port, "/segv/%d" % i, log, 3 + i, source="127.0.0.2")
    (b,) = log.wait_count("client_blocked", 1)
    t_blocked = time.monotonic()
    assert b["client"] == "127.0.0.2", b
    assert p.wait_count("blocked client 127.0.0.2 for 1500 ms", 1)
    t = time.monotonic()
    r = request_from("127.0.0.2", port, "/")
    assert r.status == 429 and 1 <= int(r.header("retry-after")) <= 2, r
    assert time.monotonic() - t >= 0.2
    r = request_from("127.0.0.2", port, "/segv/3")
    assert r.status == 429, r  # before the handler: nothing crashed
    t = time.monotonic()
    assert request_from("127.0.0.1", port, "/").body == b"ok"
    assert time.monotonic() - t < 0.2  # not slowed: only the blocked client is
    assert len(log.of("retiring")) == 3
    # The block expires: 127.0.0.2 is served again, no sooner than it said.
    assert wait_until(lambda: request_from("127.0.0.2", port, "/").status == 200, timeout=5,
                      interval=0.05)
    assert time.monotonic() - t_blocked >= 1.0
    assert len(log.of("client_blocked")) == 1
    stop_cluster(p)


@no_asan
def test_M_46_an_ipv6_client_is_blocked_by_its_address(cluster):
    # bw_http_request_peer gives "::1:port" for IPv6: the budget keys on
    # "::1", the address without its port.
    p, port, log = cluster(workers=2, HOST="::1", CLIENT_FAULT_BUDGET=2,
                           CLIENT_BLOCK_DELAY_MS=0)
    for i in range(2):
        assert request(port, "/segv/%d" % i, host="::1").status == 500
        log.wait_count("listening", 3 + i)
    (b,) = log.wait_count("client_blocked", 1)
    assert b["client"] == "::1", b
    r = request(port, "/", host="::1")
    assert r.status == 429 and 50 <= int(r.header("retry-after")) <= 60, r
    stop_cluster(p)


@no_asan
def test_M_47_admin_endpoints_lift_and_unblock_and_metrics_count_them(cluster):
    # The admin listener's POST /quarantine/lift and POST /clients/unblock
    # call the lift API; /metrics counts the quarantines and the blocks.
    p, port, log = cluster(workers=2, ADMIN_PORT=-1, POISON_THRESHOLD=2, CLIENT_FAULT_BUDGET=2,
                           CLIENT_BLOCK_MS=60000, CLIENT_BLOCK_DELAY_MS=0)
    admin = log.wait_count("admin", 1)[0]["port"]

    def gauge(name):
        text = request(admin, "/metrics").body.decode()
        return [float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ")][0]

    # Two crashes of one target, from two clients (each within its budget).
    crash(port, "/parse?input=bad", log, 3, source="127.0.0.3")
    crash(port, "/parse?input=bad", log, 4, source="127.0.0.4")
    log.wait_count("quarantine", 1)
    assert request(port, "/parse?input=bad").status == 503
    assert gauge("bulwark_quarantined_routes") == 1
    assert request(admin, "/quarantine/lift").status == 405  # a GET changes nothing
    r = request(admin, "/quarantine/lift", method="POST")
    assert r.status == 200 and r.body == b"lifted 1\n", r
    assert gauge("bulwark_quarantined_routes") == 0
    assert wait_until(lambda: request(port, "/parse?input=good").status == 200, DEADLINE)
    crash(port, "/parse?input=bad", log, 5, source="127.0.0.5")  # a 500 again, not a 503
    # A client over its budget: blocked, counted, unblocked by the endpoint.
    crash(port, "/segv/a", log, 6, source="127.0.0.2")
    crash(port, "/segv/b", log, 7, source="127.0.0.2")
    log.wait_count("client_blocked", 1)
    assert request_from("127.0.0.2", port, "/").status == 429
    assert gauge("bulwark_clients_blocked") == 1 and gauge("bulwark_clients_blocked_total") == 1
    r = request(admin, "/clients/unblock?ip=127.0.0.2", method="POST")
    assert r.status == 200 and r.body == b"unblocked 1\n", r
    assert wait_until(lambda: request_from("127.0.0.2", port, "/").status == 200, DEADLINE)
    assert gauge("bulwark_clients_blocked") == 0 and gauge("bulwark_clients_blocked_total") == 1
    stop_cluster(p)
