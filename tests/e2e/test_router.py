"""The router (include/bulwark/router.h) through examples/json-service, a
small JSON API on the crash-safe cluster: real primary and workers, real
clients on loopback. T-NN: issue 14's router and its example service.
"""
import json

from bwtest import Reader, build, connect, no_asan, request, stop_cluster


SERVICE = "json-service"


@no_asan  # the example exists in the plain build only
def test_T_01_routes_parameters_and_wildcards(cluster):
    """Literal routes, a named parameter (percent-decoded), a trailing
    wildcard (the rest of the path, empty included), a POST with a body."""
    p, port, log = cluster(name=SERVICE)
    r = request(port, "/health")
    assert (r.status, r.header("content-type"), json.loads(r.body)) == \
        (200, "application/json", {"ok": True}), r
    r = request(port, "/items/42")
    assert json.loads(r.body) == {"id": "42"}, r
    r = request(port, "/items/a%20b%22")
    assert json.loads(r.body) == {"id": 'a b"'}, r
    r = request(port, "/static/css/site.css")
    assert json.loads(r.body) == {"file": "css/site.css"}, r
    r = request(port, "/static")
    assert json.loads(r.body) == {"file": ""}, r
    r = request(port, "/items", method="POST", body=b"0123456789")
    assert (r.status, json.loads(r.body)) == (201, {"created": 10}), r
    r = request(port, "/slow?ms=20")
    assert json.loads(r.body) == {"slow": True}, r
    stop_cluster(p)


@no_asan
def test_T_02_404_405_head_and_options(cluster):
    """No match: 404. A path routed for other methods: 405 with Allow (HEAD
    with GET, OPTIONS always). HEAD runs the GET route without a body;
    OPTIONS without a route of its own: 204 with Allow. A parameter with an
    invalid escape: 400."""
    p, port, log = cluster(name=SERVICE)
    assert request(port, "/nope").status == 404
    assert request(port, "/items/1/extra").status == 404
    r = request(port, "/health", method="DELETE")
    assert (r.status, r.header("allow")) == (405, "GET, HEAD, OPTIONS"), r
    r = request(port, "/items", method="GET")
    assert (r.status, r.header("allow")) == (405, "POST, OPTIONS"), r
    s = connect(port)
    s.sendall(build("/health", method="HEAD") + build("/health"))
    reader = Reader(s)
    r = reader.response(head_request=True)
    assert (r.status, r.header("content-type"), r.body) == (200, "application/json", b""), r
    assert json.loads(reader.response().body) == {"ok": True}  # nothing of a body came before
    s.close()
    r = request(port, "/health", method="OPTIONS")
    assert (r.status, r.header("allow"), r.body) == (204, "GET, HEAD, OPTIONS", b""), r
    assert request(port, "/items/%zz").status == 400
    stop_cluster(p)


@no_asan
def test_T_03_the_deliberate_bug_costs_one_500(cluster):
    """GET /bug dereferences NULL: that request gets the policy's JSON 500,
    its worker retires (logged with the request), a replacement is forked,
    and requests on other connections, before and after, are answered."""
    p, port, log = cluster(name=SERVICE)
    keep = connect(port)
    keep.sendall(build("/items/1"))
    kr = Reader(keep)
    assert json.loads(kr.response().body) == {"id": "1"}
    for i in range(3):
        r = request(port, "/bug")
        assert (r.status, r.header("content-type"), json.loads(r.body)) == \
            (500, "application/json", {"error": "internal"}), r
        keep.sendall(build(f"/items/{i}"))
        assert json.loads(kr.response().body) == {"id": str(i)}
    retiring = log.wait_count("retiring", 3)
    assert all(e["request"] == "GET /bug" for e in retiring), retiring
    log.wait_count("listening", 5)
    # Each crash line is the retiring worker's own, read by the output's
    # thread a moment after the event log has its entry.
    assert p.wait_count("crash in request GET /bug", 3), p.output()
    assert p.count("crash in request GET /bug") == 3, p.output()
    keep.close()
    stop_cluster(p)


@no_asan
def test_T_04_a_quarantined_route_answers_the_services_own_503(cluster):
    """Issue 14, error responses a service controls: after /bug crashed
    POISON_THRESHOLD workers it is quarantined, and its 503 is the
    service's own JSON (bw_crash_policy.on_quarantined) with Retry-After
    and retry_after saying the real time left, which shrinks; other routes
    are still served."""
    p, port, log = cluster(name=SERVICE, POISON_THRESHOLD=2, QUARANTINE_MS=4000)
    for _ in range(2):
        assert request(port, "/bug").status == 500
    log.wait_count("quarantine", 1)
    log.wait_count("listening", 4)
    r = request(port, "/bug")
    assert (r.status, r.header("content-type")) == (503, "application/json"), r
    body = json.loads(r.body)
    assert body["error"] == "quarantined" and 1 <= body["retry_after"] <= 4, body
    assert r.header("retry-after") == str(body["retry_after"]), r
    first = body["retry_after"]
    assert request(port, "/health").status == 200
    # The time left follows the clock: wait until it has moved on.
    import time
    deadline = time.monotonic() + 3.5
    later = first
    while later == first and time.monotonic() < deadline:
        time.sleep(0.1)
        later = json.loads(request(port, "/bug").body)["retry_after"]
    assert later < first, (first, later)
    stop_cluster(p)


@no_asan
def test_T_05_the_service_builds_against_the_installed_library(tmp_path):
    """examples/json_service.c, compiled as a user would: against the
    library installed with `cmake --install` (its headers and bulwark.pc),
    in a strict C11 build with warnings as errors, then run: its routes
    answer and its deliberate bug costs one 500."""
    import glob
    import os
    import subprocess
    from bwtest import BUILD_DIR, EventLog, Process, listening_port
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", str(prefix)], check=True,
                   capture_output=True, timeout=120)
    pcs = glob.glob(str(prefix / "**" / "bulwark.pc"), recursive=True)
    assert len(pcs) == 1, pcs
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "bulwark"], env=env, check=True,
                           capture_output=True, text=True, timeout=30).stdout.split()
    libdir = [f[2:] for f in flags if f.startswith("-L")][0]
    source = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "json_service.c")
    exe = str(tmp_path / "json-service")
    build_run = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", source, "-o", exe,
                                *flags, f"-Wl,-rpath,{libdir}"],
                               capture_output=True, text=True, timeout=120)
    assert build_run.returncode == 0, build_run.stderr
    log = EventLog(str(tmp_path / "events.jsonl"))
    p = Process([exe], env={"PORT": 0, "WORKERS": 2, "BW_EVENT_LOG": log.path},
                ready_pattern=None)
    try:
        port = listening_port(log, 2)
        assert json.loads(request(port, "/health").body) == {"ok": True}
        assert json.loads(request(port, "/items/7").body) == {"id": "7"}
        r = request(port, "/bug")
        assert (r.status, json.loads(r.body)) == (500, {"error": "internal"}), r
        assert log.wait_count("retiring", 1)[0]["request"] == "GET /bug"
        assert json.loads(request(port, "/health").body) == {"ok": True}
        stop_cluster(p)
    finally:
        p.kill()  # passed or failed, nothing of it outlives the test
