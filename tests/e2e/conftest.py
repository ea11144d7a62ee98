"""Fixtures shared by the end-to-end tests (pytest loads this file itself)."""
import pytest

from bwtest import start_cluster, start_server


@pytest.fixture
def server():
    """server(**env) starts tests/e2e/http_test_server with env; every server
    started is killed when the test ends, whatever its outcome (a test that
    wants a clean exit calls stop_server itself)."""
    started = []

    def start(**env):
        # Clients here often keep their sockets open after the server closed
        # its side, and attackers ignore its FIN: a short lingering timeout
        # keeps the runs short (the lingering itself is what E-25 checks).
        env.setdefault("LINGER_MS", 1000)
        p = start_server(env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()


@pytest.fixture
def cluster(tmp_path):
    """cluster(workers=2, name="bulwark-server", **env) starts an example
    server's primary (examples/<name>, in its own process group) with
    quarantine off unless env says otherwise; returns (process, port, event
    log). Every cluster started is killed, group and all, when the test
    ends, passed or failed."""
    started = []

    def start(workers=2, name="bulwark-server", **env):
        env.setdefault("POISON_THRESHOLD", 0)  # quarantine has its own test
        p, port, log = start_cluster(tmp_path, workers, env, name=name)
        started.append(p)
        return p, port, log

    yield start
    for p in started:
        p.kill()
