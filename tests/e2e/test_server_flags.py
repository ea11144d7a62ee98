"""The example server's command line (examples/seed_server.c): each setting
has a flag besides its environment variable, and the flag wins; --help
lists them; a bad option is a usage error."""
import signal
import socket
import subprocess

from bwtest import EventLog, Process, example_binary, no_asan, request

SETTINGS = ("HOST", "PORT", "WORKERS", "KILL_TIMEOUT_MS", "SHUTDOWN_TIMEOUT_MS",
            "HEARTBEAT_INTERVAL_MS", "HEARTBEAT_TIMEOUT_MS", "POISON_THRESHOLD", "QUARANTINE_MS",
            "RESTART_INTENSITY", "RESTART_PERIOD_MS", "MAX_FORKS_PER_SECOND", "HANDOFF",
            "HANDOFF_TIMEOUT_MS", "RESPONSE_TIMEOUT_MS", "CALLBACK_LIMIT_MS", "KEEP_ON_ERRORS",
            "ERROR_DELAY_MS", "FAIL_AT_START", "FAIL_AT_START_IF")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@no_asan  # the example server has no ASan build: one run
def test_O_01_help_lists_every_flag_its_variable_and_default_and_bad_options_exit_2():
    """--help: exit 0, on stdout, a line per setting with its flag, its
    environment variable and its default. An unknown option, a flag's bad
    value, a stray argument: usage on stderr, exit 2."""
    r = subprocess.run([example_binary(), "--help"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stderr) == (0, ""), r
    for env in SETTINGS:
        flag = "--" + env.lower().replace("_", "-") + "="
        lines = r.stdout.splitlines()
        at = [i for i, line in enumerate(lines) if line.strip().startswith(flag)]
        assert len(at) == 1, (flag, r.stdout)
        detail = lines[at[0] + 1]
        assert f"; environment {env}]" in detail and detail.strip().startswith("["), detail
    assert "[1337; environment PORT]" in r.stdout and "[2; environment WORKERS]" in r.stdout
    assert "BW_EVENT_LOG" in r.stdout  # the library's own, listed apart
    for argv in (["--no-such-flag"], ["--port=eighty"], ["--handoff=2"], ["stray"]):
        r = subprocess.run([example_binary(), *argv], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and r.stdout == "" and r.stderr, (argv, r)
    r = subprocess.run([example_binary(), "--bogus"], capture_output=True, text=True, timeout=30)
    assert "Usage: bulwark-server" in r.stderr, r.stderr


@no_asan
def test_O_02_flags_override_the_environment(tmp_path):
    """PORT and WORKERS in the environment, --port and --workers on the
    command line: the flags win. One GET on the flag's port; the
    environment's port is not listened on; SIGTERM: exit 0, with one worker
    forked in all."""
    flag_port, env_port = free_port(), free_port()
    while env_port == flag_port:
        env_port = free_port()
    log = EventLog(str(tmp_path / "events.jsonl"))
    p = Process([example_binary(), f"--port={flag_port}", "--workers=1"],
                env={"PORT": env_port, "WORKERS": 3, "BW_EVENT_LOG": log.path},
                ready_pattern=None)
    listening = log.wait_count("listening", 1)
    assert listening[0]["port"] == flag_port, listening
    r = request(flag_port, "/")
    assert (r.status, r.body) == (200, b"ok"), r
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", env_port)) != 0
    p.signal(signal.SIGTERM)
    assert p.wait(20) == 0, p.output()
    assert len(log.of("fork")) == 1, log.events()
