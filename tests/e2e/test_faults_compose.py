"""The fault matrix on the compose backend (`--compose docker-compose.yml --service app`): every fault, the
documented exit code, every planned test in the merged JUnit (run, or an error naming the cause), a message
naming the cause, and nothing left: containers, networks, volumes, processes (compose clients, test
processes), temporary directories.

The faults run in parallel: one run whose groups each suffer a different fault of the test process (its
pytest SIGKILLed inside the container as the OOM killer would, a segfault, a hang), one whose Redis sidecar
is killed mid-run, one whose database never becomes healthy, one on a full reports filesystem, and one whose
Docker engine becomes unreachable mid-run (the run talks to the engine through a socket proxy that the test
kills), all at once. The fixture project (tests/fixtures/faults, built from compose-services' images) says
which group suffers which fault in faults.json; see its README.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import FIXTURES, PYTHON, REPO, clean_env, require_docker, run

sys.path.insert(0, str(FIXTURES / "faults"))
import leftovers as lo  # noqa: E402

PYTEST = ["pytest", "-q", "--tb=short", "--junit-xml=unit.xml"]
GROUP_TIMEOUT = 75


def start(testfleet, base, faults, args, files=("docker-compose.yml",), reports_dir=None, docker_host=None):
    project = lo.copy_project(FIXTURES, base, compose=True)
    if faults:
        (project / "faults.json").write_text(json.dumps({str(g): f for g, f in faults.items()}))
    sandbox = lo.Sandbox(base / "sandbox")
    extra = {"DOCKER_HOST": docker_host} if docker_host else {}
    env = sandbox.env(clean_env(), **extra)
    compose = [word for f in files for word in ("--compose", f)]
    reports = ["--reports-dir", str(reports_dir)] if reports_dir else []
    argv = [testfleet, "run", "--progress", "plain", *reports, *args, *compose, "--service", "app", "--", *PYTEST]
    return project, sandbox, lo.Launched(argv, project, env, base / "testfleet.log")


@pytest.fixture(scope="module")
def matrix(testfleet, tmp_path_factory):
    require_docker()
    scenarios = []
    # No restarts: each faulty worker leaves the run at its first fault (test_faults_native.py says why).
    crash = start(testfleet, tmp_path_factory.mktemp("crash"), {1: "sigkill-wait", 2: "segv", 3: "hang"},
                  ["-n", "4", "--timeout", str(GROUP_TIMEOUT), "--kill-grace", "5", "--max-worker-restarts", "0"])
    # The pytest inside group 1's container, seen from the host: SIGKILL it alone, as the OOM killer does.
    scenarios.append(lo.Scenario("crash", *crash, compose=True, actions=[
        ({"group-1.waiting"}, lambda sc: lo.sigkill_group(sc.run_id, 1, whole_process_group=False))]))

    sidecar = start(testfleet, tmp_path_factory.mktemp("sidecar"), {1: "sidecar-dies"}, ["-n", "2"])
    scenarios.append(lo.Scenario("sidecar", *sidecar, compose=True, actions=[
        ({"group-1.kill-redis"}, lambda sc: lo.sigkill_compose_sidecar(sc.run_id, 1, "redis"))]))

    # Docker says "unhealthy" after 3 failed checks: no reason to wait out the readiness timeout.
    unhealthy = start(testfleet, tmp_path_factory.mktemp("unhealthy"), {}, ["-n", "2"],
                      files=("docker-compose.yml", "docker-compose.unhealthy.yml"))
    scenarios.append(lo.Scenario("unhealthy", *unhealthy, compose=True, deadline=170))

    full_base = tmp_path_factory.mktemp("fullfs")
    reports = full_base / "reports"
    with lo.small_tmpfs(reports) as mounted:
        if mounted.returncode == 0:
            full = start(testfleet, full_base, {1: "flood"}, ["-n", "2"], reports_dir=reports)
            scenarios.append(lo.Scenario("full", *full, compose=True))

        proxy = None
        upstream = lo.docker_socket()
        if upstream:
            proxy_base = tmp_path_factory.mktemp("engine")
            proxy = lo.DockerProxy(upstream, proxy_base / "docker.sock").start()
            unreachable = start(testfleet, proxy_base, {1: "hang", 2: "hang"}, ["-n", "2"],
                                docker_host=f"unix://{proxy.path}")
            scenarios.append(lo.Scenario("unreachable", *unreachable, compose=True, deadline=600, actions=[
                ({"group-1.hanging", "group-2.hanging"}, lambda sc: proxy.stop())]))
            scenarios[-1].docker_host = proxy.path
        try:
            done = lo.drive(scenarios)
            done["mounted"] = mounted
            yield done
        finally:
            if proxy is not None:
                proxy.stop()
            for scenario in scenarios:
                scenario.launched.kill_if_running()
                if scenario.run_id:
                    lo.remove_compose_resources(scenario.run_id)
                    lo.kill_leftover_processes(scenario.run_id, scenario.sandbox)


messages = lo.messages
assert_every_test_once = lo.assert_every_test_once


def assert_nothing_left(scenario):
    lo.assert_nothing_left(scenario, compose=True)


def failed_line(output, group):
    lines = [line for line in output.splitlines() if line.startswith(f"FAILED: worker {group} [")]
    assert lines, f"no FAILED line for worker {group}:\n{output[-6000:]}"
    return lines[0]


def test_killed_segfaulting_and_hung_groups(matrix):
    scenario = matrix["crash"]
    assert not scenario.problems, scenario.problems
    assert scenario.code == 1, scenario.describe()
    assert_every_test_once(scenario)
    # Each faulty worker loses the test it was running; the tests it still held run on worker 4.
    assert lo.outcome_counts(scenario.project / "unit.xml") == {"passed": 21, "error": 3}, scenario.describe()
    # Inside a container a signal death comes back as exit 128+N from `docker compose run`: the report must
    # still name the signal, and the test that was running when it struck.
    for group, signal_name in ((1, "SIGKILL"), (2, "SIGSEGV")):
        assert signal_name in failed_line(scenario.output, group), scenario.describe()
        named = messages(scenario.cases, group)
        assert len(named) == 1 and signal_name in named[0] and "while running this test" in named[0], (group, named)
    named = messages(scenario.cases, 3)
    assert len(named) == 1 and named[0].startswith("timed out: worker 3 was stopped after"), named
    assert "worker 4 passed" in scenario.output
    assert_nothing_left(scenario)


def test_sidecar_killed_mid_run(matrix):
    scenario = matrix["sidecar"]
    assert not scenario.problems, scenario.problems
    lines = [line for line in scenario.output.splitlines() if "worker 1" in line and "redis" in line]
    assert any(word in line for line in lines for word in ("exited", "died", "killed", "ended", "stopped")), (
        "no line names worker 1's Redis sidecar, killed mid-run:\n" + scenario.describe())
    # A sidecar that failed is an infrastructure error, whatever the tests said.
    assert scenario.code == 3, scenario.describe()
    assert_every_test_once(scenario)
    assert "worker 2 passed" in scenario.output
    assert_nothing_left(scenario)


def test_sidecar_never_healthy(matrix):
    scenario = matrix["unhealthy"]
    assert not scenario.problems, scenario.problems + [scenario.describe()]
    assert scenario.code == 3, scenario.describe()
    assert_every_test_once(scenario)
    for group in (1, 2):
        named = messages(scenario.cases, group)
        assert named and all(m.startswith(f"not run: worker {group}'s environment failed:") for m in named), named
        assert all("db" in m and "unhealthy" in m for m in named), named
    assert_nothing_left(scenario)


def test_full_reports_filesystem(matrix):
    if matrix["mounted"].returncode != 0:
        if os.environ.get("CI") or os.geteuid() == 0:
            pytest.fail(f"cannot mount a tmpfs: {matrix['mounted'].stderr}")
        pytest.skip("mounting a tmpfs needs root")
    scenario = matrix["full"]
    assert scenario.code == 3, scenario.describe()
    assert "No space left on device" in scenario.output, scenario.describe()
    assert_every_test_once(scenario)
    assert_nothing_left(scenario)


def test_engine_unreachable_mid_run(matrix):
    if "unreachable" not in matrix:
        pytest.fail(f"DOCKER_HOST={os.environ.get('DOCKER_HOST')} is not a Unix socket: no proxy to kill")
    scenario = matrix["unreachable"]
    assert not scenario.problems, scenario.problems + [scenario.describe()]
    assert scenario.code == 3, scenario.describe()
    assert_every_test_once(scenario)
    run_id = scenario.run_id
    # The engine is gone: testfleet cannot remove its containers, but must say so, naming the engine, the
    # projects it left and how to remove them once the engine is back.
    assert scenario.docker_host in scenario.output or "Docker engine" in scenario.output, scenario.describe()
    assert f"testfleet-{run_id}-g1" in scenario.output and "testfleet clean" in scenario.output, scenario.describe()
    # Nothing of it runs on this host any more: no compose client, no temporary directory. (Its containers,
    # with the test processes in them, are on the engine, which testfleet could not reach; the state file
    # stays for `testfleet clean`.)
    left = [item for item in lo.settled_leftovers(run_id, scenario.sandbox, scenario.output)
            if not item.startswith("state file:") and "(in a container)" not in item]
    assert left == [], "\n".join(left)


def test_sigkill_of_testfleet_then_clean(testfleet, tmp_path):
    require_docker()
    project, sandbox, launched = start(testfleet, tmp_path, {1: "hang", 2: "hang"}, ["-n", "2"])
    scenario = lo.Scenario("sigkill", project, sandbox, launched, compose=True)
    run_id = None
    try:
        lo.wait_until(lambda: {"group-1.hanging", "group-2.hanging"} <= scenario.markers(), 600,
                      "both groups to hang", proc=launched.proc)
        run_id = launched.run_id()
        launched.proc.kill()
        launched.proc.wait(timeout=60)
        output = launched.output()
        assert lo.compose_resources(run_id), "a SIGKILLed run left no container: the test did not test clean"
        # `testfleet clean` may only remove what dead runs left: without a record of this run it cannot tell
        # it from a live one, and would remove every run's projects on this engine (other tests' included).
        assert sandbox.state_mentions(run_id), (
            f"the SIGKILLed compose run {run_id} left no state file under XDG_RUNTIME_DIR/testfleet: "
            "`testfleet clean` cannot tell it from a live run (not running clean, which would remove "
            "every testfleet project on the engine)")
        result = run([testfleet, "clean"], cwd=project, env=sandbox.env(clean_env()))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"testfleet-{run_id}" in result.stdout, result.stdout
        left = lo.settled_leftovers(run_id, sandbox, output, compose=True)
        assert left == [], "after testfleet clean:\n" + "\n".join(left) + "\nclean said:\n" + result.stdout
    finally:
        launched.kill_if_running()
        if run_id:
            lo.remove_compose_resources(run_id)
            lo.kill_leftover_processes(run_id, sandbox)


def test_signal_storm_few_repetitions(testfleet, tmp_path):
    """A few repetitions of scripts/signal-storm.py (50 by hand) on the compose backend."""
    require_docker()
    result = subprocess.run([PYTHON, str(REPO / "scripts" / "signal-storm.py"), "--backend", "compose",
                             "--repetitions", "2", "--max-delay", "40", "--binary", testfleet, "--work", str(tmp_path)],
                            capture_output=True, text=True, timeout=1500, env=clean_env())
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    assert "2 repetitions: 2 passed" in result.stdout, result.stdout[-3000:]
