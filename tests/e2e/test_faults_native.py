"""The fault matrix on the native backend (`--with postgres --with redis`): every fault, the documented exit
code, every planned test in the merged JUnit (run, or an error naming the cause), a message naming the cause,
and nothing left: processes, temporary directories, state files, ports.

The faults run in parallel to keep this module short: one run whose groups each suffer a different fault of
the test process (SIGKILL, segfault, hang), one whose groups suffer server faults (a Redis that never becomes
ready, a Redis killed mid-run), one on a full reports filesystem, all at once. The fixture project
(tests/fixtures/faults) says which group suffers which fault in faults.json; see its README.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import FIXTURES, PYTHON, REPO, clean_env, run

sys.path.insert(0, str(FIXTURES / "faults"))
import leftovers as lo  # noqa: E402

SERVICES = ["--with", "postgres", "--with", "redis"]
PYTEST = ["pytest", "-q", "--tb=short", "--junit-xml=unit.xml"]
# No docker engine for the native runs and `testfleet clean`: their leftovers are ours to check, and a clean
# must not touch the compose projects of other runs on a shared engine.
NO_ENGINE = "unix:///nonexistent/testfleet-faults/docker.sock"
GROUP_TIMEOUT = 60


def start(testfleet, base, faults, args, config=None, reports_dir=None):
    project = lo.copy_project(FIXTURES, base)
    if faults:
        (project / "faults.json").write_text(json.dumps({str(g): f for g, f in faults.items()}))
    if config:
        (project / "testfleet.toml").write_text(config)
    sandbox = lo.Sandbox(base / "sandbox")
    env = sandbox.env(clean_env(), DOCKER_HOST=NO_ENGINE)
    reports = ["--reports-dir", str(reports_dir)] if reports_dir else []
    argv = [testfleet, "run", "--progress", "plain", *reports, *args, *SERVICES, "--", *PYTEST]
    return project, sandbox, lo.Launched(argv, project, env, base / "testfleet.log")


@pytest.fixture(scope="module")
def work_root():
    """Where this module's runs live: not under pytest's tmp_path, which another pytest session starting
    meanwhile (ctest runs modules side by side) resets to 0700, shutting PostgreSQL (user postgres) out."""
    path = Path(tempfile.mkdtemp(prefix="tf-faults-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def fresh(root, name):
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    os.chmod(path, 0o711)
    return path


@pytest.fixture(scope="module")
def matrix(testfleet, work_root):
    """Three faulty runs at once; the harness hits groups from outside when their tests ask for it."""
    scenarios = []
    # No restarts: each faulty worker leaves the run at its first fault (the fixture's fault strikes in every
    # runner's third test, so a restarted runner would strike again); test_run_core.py has the restarts.
    crash = start(testfleet, fresh(work_root, "crash"), {1: "sigkill-wait", 2: "segv", 3: "hang"},
                  ["-n", "4", "--timeout", str(GROUP_TIMEOUT), "--kill-grace", "5", "--max-worker-restarts", "0"])
    scenarios.append(lo.Scenario("crash", *crash, actions=[
        ({"group-1.waiting"}, lambda sc: lo.sigkill_group(sc.run_id, 1))]))
    # Group 1's Redis never answers (the configuration's own command for it sleeps); group 2's is killed. The
    # others read the configuration testfleet writes for them, their password with it.
    never_ready = (
        '[services.redis]\n'
        'command = ["/bin/sh", "-c", "if [ {group} = 1 ]; then exec sleep 600; fi; exec redis-server {dir}/redis.conf"]\n'
        'ready-timeout = 1\n')
    servers = start(testfleet, fresh(work_root, "servers"), {2: "sidecar-dies"}, ["-n", "3"],
                    config=never_ready)
    scenarios.append(lo.Scenario("servers", *servers, actions=[
        ({"group-2.kill-redis"}, lambda sc: lo.sigkill_native_server(sc.sandbox, 2, "redis"))]))
    full_base = fresh(work_root, "fullfs")
    reports = full_base / "reports"
    with lo.small_tmpfs(reports) as mounted:
        if mounted.returncode == 0:
            full = start(testfleet, full_base, {1: "flood"}, ["-n", "2"], reports_dir=reports)
            scenarios.append(lo.Scenario("full", *full))
        try:
            done = lo.drive(scenarios)
            done["mounted"] = mounted
            yield done
        finally:
            for scenario in scenarios:
                scenario.launched.kill_if_running()
                if scenario.run_id:
                    lo.kill_leftover_processes(scenario.run_id, scenario.sandbox)


messages = lo.messages
assert_every_test_once = lo.assert_every_test_once
assert_nothing_left = lo.assert_nothing_left


def test_killed_segfaulting_and_hung_workers_cost_only_their_running_test(matrix):
    outcome = matrix["crash"]
    assert outcome.code == 1, outcome.describe()
    assert_every_test_once(outcome)
    # Each faulty worker loses the test it was running; the tests it still held run on worker 4.
    assert lo.outcome_counts(outcome.project / "unit.xml") == {"passed": 21, "error": 3}, outcome.describe()
    for group, running in (
            (1, "worker 1 crashed (killed by SIGKILL) while running this test"),
            (2, "worker 2 crashed (killed by SIGSEGV) while running this test"),
            (3, "timed out: worker 3 was stopped after")):
        named = messages(outcome.cases, group)
        assert len(named) == 1 and named[0].startswith(running), (group, named)
    assert "FAILED: worker 1 [killed by SIGKILL]" in outcome.output
    assert "FAILED: worker 2 [killed by SIGSEGV]" in outcome.output
    assert "worker 3 timed out after" in outcome.output
    assert "worker 4 passed" in outcome.output
    for group in (1, 2, 3):
        assert f"worker {group} is out of the run" in outcome.output, outcome.describe()
    record = json.loads((outcome.project / "testfleet-reports" / "run.json").read_text())
    assert any(steal["from"] == "lost workers" and steal["to"] == 4 for steal in record["steals"]), record["steals"]
    assert_nothing_left(outcome)


def test_sidecar_never_ready_and_sidecar_dying_mid_run(matrix):
    outcome = matrix["servers"]
    # A server that failed is an infrastructure error, whatever the tests said (worker 1's alone makes it 3
    # here; test_faults_compose.py::test_sidecar_killed_mid_run has a dying sidecar alone).
    assert outcome.code == 3, outcome.describe()
    assert_every_test_once(outcome)
    # Worker 1 never got its Redis: its share of the tests ran on the others, and has real results.
    assert messages(outcome.cases, 1) == [], outcome.describe()
    assert "FAILED: worker 1: its environment could not be provisioned" in outcome.output
    assert "redis was not ready" in outcome.output and "within 1" in outcome.output
    # Worker 2's Redis was SIGKILLed after its second test: testfleet must say so, not leave the reader to
    # guess from connection errors.
    lines = [line for line in outcome.output.splitlines() if "worker 2" in line and "redis" in line]
    assert any(word in line for line in lines for word in ("ended", "died", "killed", "exited")), (
        "no line names worker 2's Redis, which died mid-run:\n" + outcome.describe())
    assert "worker 3 passed" in outcome.output
    assert_nothing_left(outcome)


def test_full_reports_filesystem(matrix):
    if matrix["mounted"].returncode != 0:
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail(f"cannot mount a tmpfs: {matrix['mounted'].stderr}")
        pytest.skip("mounting a tmpfs needs root")
    outcome = matrix["full"]
    assert outcome.code == 3, outcome.describe()
    assert "No space left on device" in outcome.output, outcome.describe()
    # The merged JUnit was asked for outside the full filesystem: every test is there.
    assert_every_test_once(outcome)
    assert_nothing_left(outcome)


def stable_leftovers(run_id, sandbox, output, patience=20):
    """lo.leftovers() once it stopped changing (what was dying is gone), or after `patience` seconds."""
    deadline = time.monotonic() + patience
    last = lo.leftovers(run_id, sandbox, output)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = lo.leftovers(run_id, sandbox, output)
        if now == last:
            return now
        last = now
    return last


def test_sigkill_of_testfleet_is_cleaned_by_testfleet_clean(testfleet, work_root):
    project, sandbox, launched = start(testfleet, fresh(work_root, "sigkill"), {1: "hang", 2: "hang"}, ["-n", "2"])
    scenario = lo.Scenario("sigkill", project, sandbox, launched)
    try:
        lo.wait_until(lambda: {"group-1.hanging", "group-2.hanging"} <= scenario.markers(), 300,
                      "both groups to hang", proc=launched.proc)
        run_id = launched.run_id()
        launched.proc.kill()
        launched.proc.wait(timeout=60)
    finally:
        launched.kill_if_running()
    output = launched.output()
    # A SIGKILL cannot be cleaned up after by the process itself: something must be left for clean to find.
    # The servers end by themselves (PDEATHSIG) a moment after testfleet: the snapshot waits for that.
    before = stable_leftovers(run_id, sandbox, output)
    servers = [item for item in before if "redis-server" in item or "postgres" in item.split(":", 1)[-1]]
    assert servers == [], "servers outlived their SIGKILLed testfleet:\n" + "\n".join(servers)
    assert before, "a SIGKILLed run left nothing: the test did not test clean"
    env = sandbox.env(clean_env(), DOCKER_HOST=NO_ENGINE)
    problems = []
    try:
        dry = run([testfleet, "clean", "--dry-run"], cwd=project, env=env)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        # It names the run's native state file wherever that is (the fallback under /tmp included).
        assert "would clean the native run recorded in" in dry.stdout, dry.stdout
        kept = sandbox.files_left() + lo.leftover_processes(run_id, sandbox)
        expected = sorted(item for item in before if not item.startswith("port"))
        if sorted(kept) != expected:
            problems.append("`testfleet clean --dry-run` removed things:\n" + dry.stdout
                            + "\ngone: " + repr(sorted(set(expected) - set(kept)))
                            + "\nnew: " + repr(sorted(set(kept) - set(expected))))
        result = run([testfleet, "clean"], cwd=project, env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        left = lo.settled_leftovers(run_id, sandbox, output)
        if left:
            problems.append("after testfleet clean:\n" + "\n".join(left) + "\nclean said:\n" + result.stdout)
        again = run([testfleet, "clean"], cwd=project, env=env)
        assert again.returncode == 0 and run_id not in again.stdout, again.stdout
        assert not problems, "\n\n".join(problems)
    finally:
        lo.kill_leftover_processes(run_id, sandbox)


def test_signal_storm_few_repetitions(testfleet, work_root):
    """A few repetitions of scripts/signal-storm.py (50 by hand): SIGINT, SIGTERM or SIGHUP at a random moment."""
    result = subprocess.run([PYTHON, str(REPO / "scripts" / "signal-storm.py"), "--backend", "native",
                             "--repetitions", "3", "--max-delay", "15", "--binary", testfleet, "--work",
                             str(fresh(work_root, "storm"))],
                            capture_output=True, text=True, timeout=1200, env=clean_env())
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    assert "3 repetitions: 3 passed" in result.stdout, result.stdout[-3000:]
