"""Fixtures shared by the end-to-end tests (pytest loads this file itself)."""
import pytest

from bwtest import start_server


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
