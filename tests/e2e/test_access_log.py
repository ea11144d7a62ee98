"""J-10: the access log (include/bulwark/access_log.h) and request ids
(bw_http_request_id) against the main job, examples/bulwark-server with
ACCESS_LOG, ACCESS_LOG_FORMAT, REQUEST_ID_HEADER and BW_LOG_FORMAT=json.

- J-10: one line per request in either format, the faulted request's
  included (written by the worker that faulted, as it retires); the
  client's valid X-Request-Id kept, an invalid one replaced by a generated
  id; the id the same in the response header, the access log and the
  crash report.
"""
import json
import re
import signal

import pytest

from bwtest import no_asan, request, stop_cluster, wait_until

COMBINED = re.compile(
    r'^(?P<host>[0-9.]+) - - \[(?P<time>\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" '
    r'"(?P<agent>[^"]*)" rt=(?P<rt>\d+\.\d{3}) pid=(?P<pid>\d+) route=(?P<route>\S+) '
    r'id=(?P<id>\S+) outcome=(?P<outcome>\w+)$')


def parse(fmt, text):
    lines = text.splitlines()
    if fmt == "json":
        return [json.loads(line) for line in lines]
    out = []
    for line in lines:
        m = COMBINED.match(line)
        assert m, f"not a combined line: {line!r}"
        d = m.groupdict()
        method, target, _ = d["request"].split(" ")
        out.append({"method": method, "target": target, "status": int(d["status"]),
                    "request_id": d["id"], "outcome": d["outcome"], "pid": int(d["pid"]),
                    "user_agent": d["agent"]})
    return out


@no_asan
@pytest.mark.parametrize("fmt", ["combined", "json"])
def test_J_10_a_line_per_request_and_one_id_everywhere(cluster, tmp_path, fmt):
    path = tmp_path / "access.log"
    p, port, log = cluster(workers=2, ACCESS_LOG=path, ACCESS_LOG_FORMAT=fmt,
                           REQUEST_ID_HEADER=1, BW_LOG_FORMAT="json")
    sent = []
    for i in range(10):
        r = request(port, f"/?n={i}", headers={"User-Agent": 'agent "quoted"'})
        assert r.status == 200 and r.body == b"ok"
        sent.append((f"/?n={i}", r.header("x-request-id")))
    kept = request(port, "/?kept", headers={"X-Request-Id": "trace-42.a:b"})
    assert kept.header("x-request-id") == "trace-42.a:b"
    bad = request(port, "/?bad", headers={"X-Request-Id": "no spaces\tor tabs"})
    assert bad.header("x-request-id") not in (None, "no spaces\tor tabs")
    crash = request(port, "/segv")
    assert crash.status == 500
    crash_id = crash.header("x-request-id")
    ids = [i for _, i in sent] + [bad.header("x-request-id"), crash_id]
    assert all(re.fullmatch(r"[0-9a-f]{16}-[0-9a-f]+", i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    stop_cluster(p)  # the workers free their logs as they exit: every line is out
    lines = parse(fmt, path.read_text())
    assert len(lines) == 13, lines
    by_target = {line["target"]: line for line in lines}
    for target, rid in sent:
        line = by_target[target]
        assert (line["status"], line["outcome"], line["request_id"]) == (200, "answered", rid)
    assert by_target["/?kept"]["request_id"] == "trace-42.a:b"
    assert by_target["/?bad"]["request_id"] == bad.header("x-request-id")
    faulted = by_target["/segv"]
    assert (faulted["status"], faulted["outcome"], faulted["request_id"]) == \
        (500, "faulted", crash_id)
    if fmt == "json":
        assert faulted["peer"].startswith("127.0.0.1:")
        assert by_target["/?n=0"]["user_agent"] == 'agent "quoted"'
    else:
        assert by_target["/?n=0"]["user_agent"] == r"agent \x22quoted\x22"
    # The crash report names the same request id.
    reports = [json.loads(l) for l in p.output().splitlines()
               if l.startswith("{") and 'crash in request' in l]
    assert len(reports) == 1, p.output()
    assert reports[0]["request"]["id"] == crash_id, reports[0]


@no_asan
def test_J_11_logs_follow_logrotate(cluster, tmp_path):
    # logrotate moves the files away: the access log notices at its next
    # write and goes on in a new file at the path; the event log is
    # reopened on SIGUSR1, nginx's signal for it. No line is lost.
    path = tmp_path / "access.log"
    p, port, log = cluster(workers=1, ACCESS_LOG=path)
    assert request(port, "/?before").body == b"ok"
    assert wait_until(lambda: path.exists() and "/?before" in path.read_text(), 5)
    path.rename(tmp_path / "access.log.1")
    events = tmp_path / "events.jsonl"  # the cluster fixture's event log
    events.rename(tmp_path / "events.jsonl.1")
    p.signal(signal.SIGUSR1)
    assert p.wait_for("SIGUSR1: event log")
    assert request(port, "/?after").body == b"ok"
    assert wait_until(lambda: path.exists() and "/?after" in path.read_text(), 5)
    assert "/?before" not in path.read_text()
    assert "/?after" not in (tmp_path / "access.log.1").read_text()
    p.signal(signal.SIGHUP)  # events after the reopen go to the new file
    assert wait_until(lambda: events.exists() and '"listening"' in events.read_text(), 5)
    stop_cluster(p)
