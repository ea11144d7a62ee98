"""End-to-end: a request domain's cleanup that fails after the response went
out costs nothing to anyone (issue 12, item 7). Before, the throw or fault
ran outside every guard: the process died, and a concurrent /slow got
nothing.

Names: test_E_NN_* as in test_http.py. Every test ends the server
gracefully and requires exit status 0 (under ASan: no leak).
"""

from bwtest import Reader, build, connect, no_asan, request, stop_server


def check_cleanup_failure_contained(p, path, logged):
    slow = connect(p.port)
    slow.sendall(build("/slow?ms=400"))
    r = request(p.port, path)
    assert r.status == 200 and r.body == b"ok"
    s = Reader(slow).response()
    assert s.status == 200 and s.body == b"slow ok\n", "a concurrent request lost its answer"
    again = request(p.port, "/")  # the process serves on
    assert again.status == 200 and again.body == b"ok"
    p.wait_for("failed during a domain's teardown")
    out = p.output()
    assert "a cleanup (bw_domain_defer) failed" in out and logged in out
    stop_server(p)


def test_E_40_throwing_cleanup_after_200_costs_nothing(server):
    p = server()
    check_cleanup_failure_contained(p, "/cleanup-throw", "thrown by a cleanup after the response")


@no_asan  # a deliberate fault: see test_H_08
def test_E_41_faulting_cleanup_after_200_costs_nothing(server):
    p = server()
    check_cleanup_failure_contained(p, "/cleanup-segv", "SIGSEGV")
