"""Stop in a fault storm, measured: the open residual of docs/SECURITY.md
("A stop in the middle of a fault storm"). Not a test (it does not pass
or fail): it runs the harsh chaos client (bench/chaos/harsh.c) against the
example server, 256 clients with 20 % of the requests faulting, sends
SIGTERM (to the primary, then to the group, alternately) after the first
150 retirements, and prints what each run lost and how many runs lost
anything.

    BW_BUILD_DIR=build/gcc python3 tests/e2e/stopstorm.py [RUNS]
"""
import json
import pathlib
import signal
import subprocess
import sys
import tempfile

import bwtest


def one(run, tmp):
    d = pathlib.Path(tmp) / f"run{run}"
    d.mkdir()
    p, port, log = bwtest.start_cluster(d, 2, {"POISON_THRESHOLD": 0})
    try:
        out = d / "harsh.json"
        client = subprocess.Popen([bwtest.tool_binary("bw-chaos-harsh"), "--port", str(port),
                                   "--connections", "256", "--duration-ms", "3000",
                                   "--fault-permille", "200", "--timeout-ms", "3000",
                                   "--json", str(out)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.wait_count("retiring", 150, timeout=20)
        (p.signal_group if run % 2 else p.signal)(signal.SIGTERM)
        code = p.wait(40)
        client.wait(60)
        res = json.loads(out.read_text())
        return res["innocent"]["lost"], res["faults"]["lost"], code
    finally:
        p.kill()


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            innocent, faults, code = one(run, tmp)
            bad += innocent + faults > 0
            print(f"run {run}: SIGTERM to the {'group' if run % 2 else 'primary'}: "
                  f"lost {innocent} innocent, {faults} faults; primary exit {code}", flush=True)
    print(f"{bad} of {runs} runs lost a request")


if __name__ == "__main__":
    main()
