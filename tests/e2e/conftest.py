"""Shared helpers of the end-to-end tests: the real binary, real fixture projects, real reports."""

import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PYTHON = "/usr/bin/python3"


def binary_path():
    path = os.environ.get("TESTFLEET_BINARY") or str(REPO / "build" / "testfleet")
    if not os.access(path, os.X_OK):
        pytest.fail(f"testfleet binary not found at {path}: build it first (scripts/build)")
    return path


@pytest.fixture(scope="session")
def testfleet():
    return binary_path()


def clean_env(**extra):
    """The environment a user's shell would give: no CI markers that change output, our Python first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTFLEET_FIXTURE")}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin:" + env.get("PATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def copy_fixture(name, tmp_path):
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return target


def run(argv, cwd, env=None, timeout=600, **kwargs):
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env or clean_env(), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def outcome_of(case):
    """A testcase's outcome as publish-unit-test-result-action ranks them: error > failure > skipped > passed."""
    tags = {child.tag for child in case}
    for tag, name in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        if tag in tags:
            return name
    return "passed"


def junit_cases(path):
    """Multiset of (classname, name, outcome) of every testcase in a JUnit file, nested suites walked."""
    root = ET.parse(path).getroot()
    return Counter((c.get("classname", ""), c.get("name", ""), outcome_of(c)) for c in root.iter("testcase"))


def junit_counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    totals = Counter()
    for suite in suites:
        for key in ("tests", "failures", "errors", "skipped"):
            totals[key] += int(suite.get(key, "0"))
    return totals


def processes_with_env(marker):
    """PIDs of live processes whose environment holds `marker` (e.g. TESTFLEET_RUN_ID=...)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes():
                state = (entry / "stat").read_text().split(") ")[-1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(predicate, timeout=60, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def server_tmp():
    """A TMPDIR that servers running as an unprivileged user (PostgreSQL as `postgres` under root) can enter.
    Not under pytest's own tmp_path: pytest resets /tmp/pytest-of-<user> to 0700 whenever a session starts,
    and the e2e modules run as concurrent sessions."""
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="tf-e2e-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def require_docker():
    """DOCKER_HOST of a live engine. In CI (or with TESTFLEET_REQUIRE_DOCKER) a missing engine fails the test."""
    env = clean_env()
    try:
        answer = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=env, capture_output=True,
                                text=True, timeout=30)
        ok = answer.returncode == 0
        why = answer.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        message = (f"no Docker engine answers at DOCKER_HOST={os.environ.get('DOCKER_HOST', '(unset)')}: {why}; "
                   "start one with scripts/docker-engine.sh start")
        if os.environ.get("CI") or os.environ.get("TESTFLEET_REQUIRE_DOCKER"):
            pytest.fail(message)
        pytest.skip(message)
    return os.environ.get("DOCKER_HOST", "")


def docker_lines(*args):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.strip()]


def compose_leftovers(run_id):
    """Containers, networks and volumes of a run's compose projects that still exist."""
    prefix = f"testfleet-{run_id}"
    found = []
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        for line in docker_lines(*kind, "--filter", "label=com.docker.compose.project", "--format",
                                 '{{.Label "com.docker.compose.project"}} {{.Names}}' if kind[0] == "ps" else
                                 '{{.Label "com.docker.compose.project"}} {{.Name}}'):
            if line.startswith(prefix):
                found.append(f"{kind[0]}: {line}")
    return found
