"""The restart soak (issue 7), short: a few hundred worker crashes and
replacements under light load; `make soak` runs 10,000 (tests/e2e/soak.py).
Deliberate faults: plain build only."""
import os

from bwtest import no_asan
from soak import check, soak



@no_asan
def test_K_01_restart_soak_short(tmp_path, capsys):
    restarts = int(os.environ.get("SOAK_RESTARTS", "300"))
    result, _, _ = soak(restarts, workers=2, clients=4, tmpdir=str(tmp_path))
    with capsys.disabled():
        print(f"\nsoak: {result['restarts']} restarts, {result['restarts_per_second']}/s, "
              f"primary fds {result['primary_fds']}, RSS kB {result['primary_rss_kb']}")
    check(result)
