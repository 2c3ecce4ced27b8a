"""The compose backend end to end with a real Docker engine: a compose project per group, nothing left."""

import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import (FIXTURES, clean_env, compose_leftovers, copy_fixture, junit_cases, junit_counts,
                      require_docker, run, wait_for)


@pytest.fixture
def project(tmp_path):
    require_docker()
    project = copy_fixture("compose-services", tmp_path)
    # The shared-services suite, whose tests fail when groups share servers and which records the servers
    # each group used, runs inside the app container too.
    shutil.copytree(FIXTURES / "shared-services" / "tests", project / "app" / "sstests")
    compose = project / "docker-compose.yml"
    compose.write_text(compose.read_text().replace(
        '      PYTHONDONTWRITEBYTECODE: "1"\n',
        '      PYTHONDONTWRITEBYTECODE: "1"\n      TESTFLEET_FIXTURE_RECORD_DIR: /app/record\n'))
    (project / "app" / "record").mkdir()
    return project


def run_id_of(project):
    return json.loads((project / "testfleet-reports" / "run.json").read_text())["run_id"]


def require_compose(command):
    """A compose program that runs (`docker compose` v2 or `docker-compose` v1); in CI a missing one fails."""
    answer = subprocess.run([*command.split(), "version", "--short"], capture_output=True, text=True,
                            env=clean_env())
    if answer.returncode != 0:
        message = f"`{command}` does not run here: scripts/install-deps installs both compose versions"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return answer.stdout.strip()


@pytest.mark.parametrize("compose", ["docker compose", "docker-compose"])
def test_each_group_its_own_project_and_servers(testfleet, project, compose):
    """Both compose versions: v2's `docker compose` names containers P-db-1, v1's docker-compose P_db_1."""
    version = require_compose(compose)
    result = run([testfleet, "run", "-n", "4", "--compose", "docker-compose.yml", "--service", "app", "--",
                  "pytest", "--junit-xml=unit.xml", "sstests"], cwd=project, timeout=1200,
                 env=clean_env(TESTFLEET_COMPOSE=compose))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"compose: {compose} {version} (compose v{version.split('.')[0]})" in result.stdout, result.stdout
    cases = junit_cases(project / "unit.xml")
    assert sum(cases.values()) == 27 and all(outcome == "passed" for _, _, outcome in cases)
    records = [json.loads(p.read_text()) for p in (project / "app" / "record").glob("servers-*.json")]
    assert sorted(int(r["group"]) for r in records) == [1, 2, 3, 4]
    assert all(r["postgres"]["other_claims"] == [] for r in records)
    assert len({r["redis"]["run_id"] for r in records}) == 4
    assert compose_leftovers(run_id_of(project)) == []


def test_coverage_and_junit_land_on_the_host(testfleet, project):
    result = run([testfleet, "run", "-n", "3", "--compose", "docker-compose.yml", "--service", "app", "--",
                  "pytest", "--cov=.", "--cov-report=xml", "--junit-xml=out/unit.xml", "test_cache.py",
                  "test_database.py"], cwd=project, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert junit_counts(project / "out" / "unit.xml")["tests"] == 11
    coverage = (project / "coverage.xml").read_text()
    assert 'filename="test_database.py"' in coverage
    assert compose_leftovers(run_id_of(project)) == []


def test_failing_and_interrupted_runs_leave_nothing(testfleet, project):
    (project / "app" / "test_zz_fails.py").write_text("def test_fails():\n    assert 1 == 2\n")
    result = run([testfleet, "run", "-n", "2", "--compose", "docker-compose.yml", "--service", "app", "--",
                  "pytest", "--junit-xml=unit.xml", "test_cache.py", "test_zz_fails.py"], cwd=project, timeout=1200)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: worker" in result.stdout
    assert compose_leftovers(run_id_of(project)) == []

    shutil.rmtree(project / "testfleet-reports")
    (project / "app" / "test_zz_slow.py").write_text(
        "import time\nimport pytest\n@pytest.mark.parametrize('i', range(6))\n"
        "def test_slow(i):\n    time.sleep(20)\n")
    proc = subprocess.Popen([testfleet, "run", "-n", "2", "--compose", "docker-compose.yml", "--service", "app",
                             "--", "pytest", "--junit-xml=unit.xml", "test_zz_slow.py", "test_cache.py"],
                            cwd=project, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        reports = project / "testfleet-reports"
        wait_for(lambda: any(p.exists() and '"event": "start"' in p.read_text()
                             for p in reports.glob("group-*/progress.jsonl")), timeout=300, what="a started test")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    assert junit_counts(project / "unit.xml")["tests"] >= 6
    assert compose_leftovers(run_id_of(project)) == []


@pytest.mark.parametrize("schedule", ["dynamic", "static"])
def test_same_testcases_as_a_serial_compose_run(testfleet, project, schedule):
    """Workers in their own projects run exactly what one `docker compose run` of the same command runs."""
    (project / "app" / "test_zz_crash.py").write_text(
        "import ctypes, os\n"
        "def test_kills_its_own_worker():\n"
        "    if os.environ.get('TESTFLEET_GROUP'):\n"
        "        ctypes.string_at(0)  # pytest is the container's PID 1, which a SIGKILL of its own cannot end\n"
        "def test_after_the_crash():\n    pass\n")
    serial_project = f"tf-serial-{os.getpid()}-{schedule}"
    compose = ["docker", "compose", "-p", serial_project, "-f", "docker-compose.yml"]
    try:
        serial = run([*compose, "run", "--rm", "-T", "app", "pytest", "-p", "no:cacheprovider",
                      "--junit-xml=serial.xml", "test_cache.py", "test_database.py", "test_zz_crash.py"],
                     cwd=project, timeout=1200)
        assert serial.returncode == 0, serial.stdout + serial.stderr
    finally:
        run([*compose, "down", "-v", "--remove-orphans"], cwd=project, timeout=300)
    result = run([testfleet, "run", "-n", "2", "--schedule", schedule, "--compose", "docker-compose.yml",
                  "--service", "app", "--", "pytest", "-p", "no:cacheprovider", "--junit-xml=unit.xml",
                  "test_cache.py", "test_database.py", "test_zz_crash.py"], cwd=project, timeout=1200)
    assert result.returncode == 1, result.stdout + result.stderr
    serial_cases = junit_cases(project / "app" / "serial.xml")
    merged = junit_cases(project / "unit.xml")
    # The test that kills its worker is the one error (serially it passes: no TESTFLEET_GROUP there); every
    # other test, the one after it included, has its serial outcome.
    crashed = ("test_zz_crash", "test_kills_its_own_worker")
    assert merged[(*crashed, "error")] == 1, merged
    assert {k: v for k, v in merged.items() if k[:2] != crashed} == \
        {k: v for k, v in serial_cases.items() if k[:2] != crashed}
    assert "SIGSEGV in its container" in (project / "unit.xml").read_text()
    assert compose_leftovers(run_id_of(project)) == []


def test_nothing_collected_in_a_container_fails(testfleet, project):
    result = run([testfleet, "run", "-n", "2", "--compose", "docker-compose.yml", "--service", "app", "--", "pytest",
                  "--junit-xml=unit.xml", "-k", "no_such_test"], cwd=project, timeout=1200)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no tests were collected" in result.stdout and "inside the app service's container" in result.stdout
    assert compose_leftovers(run_id_of(project)) == []


def test_clear_errors(testfleet, project):
    result = run([testfleet, "run", "--compose", "docker-compose.yml", "--service", "nosuch", "--", "pytest"],
                 cwd=project)
    assert result.returncode == 2
    assert "nosuch" in result.stderr and "app" in result.stderr
    result = run([testfleet, "run", "--compose", "missing.yml", "--service", "app", "--", "pytest"], cwd=project)
    assert result.returncode == 2 and "missing.yml" in result.stderr
    result = run([testfleet, "run", "--compose", "docker-compose.yml", "--service", "app", "--", "pytest"],
                 cwd=project, env=clean_env(DOCKER_HOST="unix:///nonexistent/docker.sock"))
    assert result.returncode == 3 and "DOCKER_HOST" in result.stderr


def test_two_compose_runs_at_once(testfleet, tmp_path):
    require_docker()
    procs = []
    for name in ("a", "b"):
        base = tmp_path / name
        base.mkdir()
        project = copy_fixture("compose-services", base)
        procs.append((project, subprocess.Popen(
            [testfleet, "run", "-n", "2", "--compose", "docker-compose.yml", "--service", "app", "--", "pytest",
             "--junit-xml=unit.xml", "."], cwd=project, env=clean_env(), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)))
    for project, proc in procs:
        output, _ = proc.communicate(timeout=1200)
        assert proc.returncode == 0, output
        assert junit_counts(project / "unit.xml")["tests"] == 11
        assert compose_leftovers(run_id_of(project)) == []
