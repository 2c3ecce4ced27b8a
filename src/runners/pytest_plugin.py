"""testfleet's pytest plugin, loaded through PYTEST_PLUGINS in every command testfleet runs.

Collection: writes the collected node IDs (after -k/-m deselection) as JSON to TESTFLEET_COLLECT_FILE.
A group: keeps only the node IDs listed in TESTFLEET_TESTS_FILE (a JSON list), in collection order, so the
group runs exactly as the user's own command would, wherever pytest's rootdir is and whatever characters
the IDs hold, with no limit from argv; and appends one JSON line per event to TESTFLEET_PROGRESS_FILE, so
that progress is live and no finished result is lost if the group is killed before pytest writes JUnit.
"""

import json
import os
import time

_COLLECT_FILE = os.environ.get("TESTFLEET_COLLECT_FILE")
_TESTS_FILE = os.environ.get("TESTFLEET_TESTS_FILE")
_PROGRESS_FILE = os.environ.get("TESTFLEET_PROGRESS_FILE")
_MAX_MESSAGE = 4000

_progress = None
_phases = {}


def _emit(event):
    global _progress
    if not _PROGRESS_FILE:
        return
    if _progress is None:
        _progress = open(_PROGRESS_FILE, "a", encoding="utf-8")
    _progress.write(json.dumps(event, ensure_ascii=False) + "\n")
    _progress.flush()


def pytest_collection_modifyitems(session, config, items):
    if not _TESTS_FILE:
        return
    with open(_TESTS_FILE, encoding="utf-8") as f:
        wanted = json.load(f)
    wanted_set = set(wanted)
    selected = [item for item in items if item.nodeid in wanted_set]
    deselected = [item for item in items if item.nodeid not in wanted_set]
    items[:] = selected
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    found = {item.nodeid for item in selected}
    _emit({"event": "selected", "count": len(selected), "missing": [w for w in wanted if w not in found],
           "time": time.time()})


def pytest_collection_finish(session):
    if not _COLLECT_FILE:
        return
    ids = [item.nodeid for item in session.items]
    tmp = _COLLECT_FILE + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"rootdir": str(session.config.rootpath), "ids": ids}, f, ensure_ascii=False)
    os.replace(tmp, _COLLECT_FILE)


def pytest_runtest_logstart(nodeid, location):
    _emit({"event": "start", "id": nodeid, "time": time.time()})


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
    elif report.failed:
        # An error in setup or teardown outranks what the call did.
        state["outcome"], state["message"] = "error", "failed on %s: %s" % (report.when, _message(report))
    elif report.skipped and report.when == "setup":
        state["outcome"] = "skipped"
        state["message"] = "xfail: " + str(report.wasxfail) if wasxfail else _message(report)
    if report.when == "teardown":
        _emit({"event": "test", "id": report.nodeid, "outcome": state["outcome"],
               "seconds": round(state["seconds"], 6), "message": state["message"], "time": time.time()})
        del _phases[report.nodeid]


def pytest_sessionfinish(session, exitstatus):
    global _progress
    _emit({"event": "finish", "exitstatus": int(exitstatus), "time": time.time()})
    if _progress is not None:
        _progress.close()
        _progress = None
