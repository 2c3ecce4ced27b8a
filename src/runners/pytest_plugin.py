"""testfleet's pytest plugin, loaded through PYTEST_PLUGINS in every command testfleet runs.

Collection only (`plan`, `--dry-run`): writes the collected node IDs (after -k/-m deselection) as JSON to
TESTFLEET_COLLECT_FILE, or prints them as one "@testfleet" line when TESTFLEET_COLLECT_STDOUT is set (a
container that may not share a file with testfleet).

A worker (TESTFLEET_WORKER=1): one long-lived pytest process that collects the whole suite once, reports
the collected IDs, then runs the tests testfleet feeds it, one at a time, until told to stop. The channel is
the process's own standard streams, because they are the one thing every backend carries (a pipe on this
machine, `docker compose run -T` on any engine, remote ones included, where no file is shared):
  - in, on stdin: one JSON object a line: {"run": [node IDs]} appends to the queue; {"drain": true} says
    nothing more is coming for now (run the queue to its end, tearing every fixture down after the last);
    {"shutdown": true} (or end of file) ends the session once the queue is done.
  - out, on the original stdout: one line per event, "@testfleet " then JSON: "collected" (every ID, in
    collection order, and the number of collection errors), "start" and "test" (outcome, seconds, message),
    "missing" (an ID this process did not collect), "finish", and with TESTFLEET_RETURN_JUNIT "file" (the
    JUnit pytest wrote, base64, once the session is over: the way back from a container on any engine).
    Everything else the process prints goes to
    stderr, which testfleet logs: at import, fd 1 is duplicated for the channel and pointed at stderr, so a
    test's print() can never be mistaken for an event.
A test is run only once the test after it is known (or the queue is drained), because pytest tears down
module- and class-scoped fixtures by looking at the next item: fed one by one, a worker keeps its fixtures
exactly as a serial run would.
"""

import base64
import json
import os
import sys
import time

import pytest

_COLLECT_FILE = os.environ.get("TESTFLEET_COLLECT_FILE")
_WORKER = os.environ.get("TESTFLEET_WORKER") == "1"
_MAX_MESSAGE = 4000
_MARKER = "@testfleet "

_phases = {}
_collection_skips = []
_channel_out = None
_channel_in = None

if _WORKER:
    _channel_out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    _channel_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    sys.stdout.flush()
    os.dup2(2, 1)
    _null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(_null, 0)
    os.close(_null)


def _emit(event):
    if _channel_out is None:
        return
    _channel_out.write(_MARKER + json.dumps(event, ensure_ascii=False) + "\n")
    _channel_out.flush()


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report):
    """A module skipped at collection (importorskip) is one skipped testcase of a serial run's JUnit: every
    worker collects it, so the workers keep it out of their own JUnit and testfleet writes it once."""
    if not _WORKER or not report.skipped or not isinstance(report.longrepr, tuple):
        return
    path, line, reason = report.longrepr
    reason = str(reason)
    if reason.startswith("Skipped: "):
        reason = reason[len("Skipped: "):]
    _collection_skips.append({"id": report.nodeid, "message": reason, "text": "%s:%s: %s" % (path, line, reason)})
    report.outcome = "passed"


def pytest_collection_finish(session):
    ids = [item.nodeid for item in session.items]
    if _WORKER:
        _emit({"event": "collected", "ids": ids, "errors": int(session.testsfailed), "skips": _collection_skips,
               "rootdir": str(session.config.rootpath), "pid": os.getpid(), "time": time.time()})
    if os.environ.get("TESTFLEET_COLLECT_STDOUT") == "1" and not _WORKER:
        sys.stdout.write("\n@testfleet " + json.dumps({"event": "collected", "ids": ids}, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    if not _COLLECT_FILE:
        return
    tmp = _COLLECT_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"rootdir": str(session.config.rootpath), "ids": ids}, f, ensure_ascii=False)
    os.replace(tmp, _COLLECT_FILE)


class _Feed:
    """The queue testfleet fills through stdin."""

    def __init__(self):
        self.queue = []
        self.draining = False
        self.shutdown = False

    def read(self):
        line = _channel_in.readline()
        if not line:
            self.shutdown = True
            return
        try:
            order = json.loads(line)
        except ValueError:
            sys.stderr.write("testfleet plugin: ignoring a malformed order: %r\n" % line[:200])
            return
        self.queue.extend(order.get("run", []))
        if order.get("drain"):
            self.draining = True
        if order.get("shutdown"):
            self.shutdown = True

    def next_two(self):
        """Blocks until the queue holds two IDs, or one and nothing more is coming for now."""
        while len(self.queue) < 2 and not (self.draining or self.shutdown):
            self.read()
        while not self.queue and not self.shutdown:
            self.draining = False
            self.read()


def pytest_runtestloop(session):
    if not _WORKER:
        return None
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        raise session.Interrupted("%d error%s during collection" % (
            session.testsfailed, "s" if session.testsfailed != 1 else ""))
    if session.config.option.collectonly:
        return True
    items = {item.nodeid: item for item in session.items}
    feed = _Feed()
    while True:
        feed.next_two()
        if not feed.queue:
            break
        nodeid = feed.queue.pop(0)
        item = items.get(nodeid)
        if item is None:
            _emit({"event": "missing", "id": nodeid, "time": time.time()})
            continue
        following = None
        for candidate in feed.queue:
            following = items.get(candidate)
            if following is not None:
                break
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=following)
        if session.shouldfail or session.shouldstop:
            break
    return True


def pytest_runtest_logstart(nodeid, location):
    _emit({"event": "start", "id": nodeid, "file": location[0], "line": location[1], "time": time.time()})


def _message(report):
    if report.longrepr is None:
        return ""
    if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2])
    text = str(report.longrepr)
    return text[-_MAX_MESSAGE:]


def pytest_runtest_logreport(report):
    state = _phases.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed", "message": ""})
    state["seconds"] += getattr(report, "duration", 0.0) or 0.0
    wasxfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if report.failed:
            state["outcome"], state["message"] = "failed", _message(report)
        elif report.skipped:
            state["outcome"] = "skipped"
            state["message"] = "xfail: " + str(report.wasxfail) if wasxfail else _message(report)
    elif report.failed and report.when == "teardown" and state["outcome"] == "failed":
        # A failed call and a teardown error are two testcases in pytest's JUnit: the second comes along.
        state["teardown_error"] = "failed on teardown: %s" % _message(report)
    elif report.failed:
        # An error in setup or teardown outranks what the call did.
        state["outcome"], state["message"] = "error", "failed on %s: %s" % (report.when, _message(report))
    elif report.skipped and report.when == "setup":
        state["outcome"] = "skipped"
        state["message"] = "xfail: " + str(report.wasxfail) if wasxfail else _message(report)
    if report.when == "teardown":
        event = {"event": "test", "id": report.nodeid, "outcome": state["outcome"],
                 "seconds": round(state["seconds"], 6), "message": state["message"], "time": time.time()}
        if "teardown_error" in state:
            event["teardown_error"] = state["teardown_error"]
        _emit(event)
        del _phases[report.nodeid]


def pytest_sessionfinish(session, exitstatus):
    _emit({"event": "finish", "exitstatus": int(exitstatus), "time": time.time()})


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # pytest's junitxml wrote its file at the end of the session: sent back whole.
    path = getattr(config.option, "xmlpath", None)
    if not _WORKER or os.environ.get("TESTFLEET_RETURN_JUNIT") != "1" or not path or not os.path.exists(path):
        return
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    _emit({"event": "file", "name": "junit.xml", "data": data, "time": time.time()})
