"""The native backend end to end: each group its own PostgreSQL and Redis, real servers, nothing left behind."""

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from conftest import clean_env, copy_fixture, junit_cases, junit_counts, run, wait_for

SERVICES = ["--with", "postgres", "--with", "redis"]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def records(directory):
    return [json.loads(p.read_text()) for p in sorted(directory.glob("servers-*.json"))]


def assert_nothing_left(tmpdir, recorded):
    assert list(tmpdir.iterdir()) == [], f"left in TMPDIR: {list(tmpdir.iterdir())}"
    for record in recorded:
        assert not port_open(record["postgres"]["port"]), record["postgres"]
        assert not port_open(record["redis"]["tcp_port"]), record["redis"]


@pytest.fixture
def project(tmp_path, server_tmp):
    project = copy_fixture("shared-services", tmp_path)
    (tmp_path / "tmp").symlink_to(server_tmp)
    (tmp_path / "record").mkdir()
    return project


def env_for(project):
    base = project.parent
    return clean_env(TMPDIR=(base / "tmp").resolve(), TESTFLEET_FIXTURE_RECORD_DIR=base / "record")


def test_xdist_workers_inside_a_worker_are_refused(testfleet, project):
    """pytest-xdist's workers inside one testfleet worker would share its one PostgreSQL and Redis again."""
    result = run([testfleet, "run", "-n", "1", *SERVICES, "--", "pytest", "-p", "xdist", "-n", "4",
                  "--junit-xml=unit.xml", "tests"], cwd=project, env=env_for(project))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'-n' asks pytest-xdist for workers of its own" in result.stderr + result.stdout
    assert not (project / "unit.xml").exists()


def test_each_group_gets_its_own_servers_and_passes(testfleet, project):
    result = run([testfleet, "run", "-n", "4", *SERVICES, "--", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project, env=env_for(project))
    assert result.returncode == 0, result.stdout + result.stderr
    cases = junit_cases(project / "unit.xml")
    assert sum(cases.values()) == 27 and all(outcome == "passed" for _, _, outcome in cases)
    recorded = records(project.parent / "record")
    assert sorted(int(r["group"]) for r in recorded) == [1, 2, 3, 4]
    assert len({r["postgres"]["port"] for r in recorded}) == 4
    # Copies of one template share a system identifier: what proves isolation is that no other group of the
    # run wrote its claim into the same database.
    assert all(r["postgres"]["other_claims"] == [] for r in recorded)
    assert len({r["redis"]["run_id"] for r in recorded}) == 4
    for r in recorded:
        # The fixture masks the password that every group's Redis now has.
        assert r["environment"]["REDIS_URL"].startswith("redis://:***@127.0.0.1:")
        assert r["environment"]["PGPORT"] == str(r["postgres"]["port"])
    assert_nothing_left(project.parent / "tmp", recorded)


def test_failed_run_cleans_up_too(testfleet, project):
    (project / "tests" / "test_zz_fails.py").write_text("def test_fails():\n    assert False\n")
    result = run([testfleet, "run", "-n", "2", *SERVICES, "--", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project, env=env_for(project))
    assert result.returncode == 1, result.stdout + result.stderr
    assert junit_counts(project / "unit.xml")["failures"] == 1
    assert_nothing_left(project.parent / "tmp", records(project.parent / "record"))


def test_interrupted_run_cleans_up(testfleet, project):
    proc = subprocess.Popen([testfleet, "run", "-n", "3", *SERVICES, "--", "pytest", "--junit-xml=unit.xml",
                             "tests"], cwd=project, env=env_for(project), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        reports = project / "testfleet-reports"
        wait_for(lambda: any(p.exists() and '"event": "test"' in p.read_text()
                             for p in reports.glob("group-*/progress.jsonl")), what="a finished test")
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, output
    assert junit_counts(project / "unit.xml")["tests"] >= 27
    assert list((project.parent / "tmp").iterdir()) == []


@pytest.mark.parametrize("where", ["default", "TESTFLEET_SERVER_DIR"])
def test_server_data_in_memory_unless_told_otherwise(testfleet, project, server_tmp, where):
    """Without TMPDIR the clusters live in /dev/shm (a tmpfs: copying a cluster there is several times faster
    than to a disk); TESTFLEET_SERVER_DIR, or TMPDIR (the other tests), puts them elsewhere."""
    env = clean_env(TESTFLEET_FIXTURE_RECORD_DIR=project.parent / "record")
    env.pop("TMPDIR", None)
    expected = "/dev/shm"
    if where == "TESTFLEET_SERVER_DIR":
        env["TESTFLEET_SERVER_DIR"] = str(server_tmp)
        expected = str(server_tmp)
    else:
        env.pop("TESTFLEET_SERVER_DIR", None)
    result = run([testfleet, "run", "-n", "2", *SERVICES, "--", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    recorded = records(project.parent / "record")
    assert len(recorded) == 2
    run_dirs = set()
    for record in recorded:
        data = Path(record["postgres"]["data_directory"])
        assert data.is_relative_to(expected) and data.relative_to(expected).parts[0].startswith(
            "testfleet-native-"), record
        run_dirs.add(Path(expected) / data.relative_to(expected).parts[0])
    assert len(run_dirs) == 1 and not any(d.exists() for d in run_dirs), run_dirs
    assert not [p for p in Path("/dev/shm").iterdir() if p.name.startswith("PostgreSQL.")
                and p.stat().st_uid == run_user_uid()], "dynamic shared memory left in /dev/shm"


def run_user_uid():
    import pwd
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return os.getuid()


def test_two_runs_at_once_do_not_collide(testfleet, tmp_path, server_tmp):
    procs = []
    for name in ("a", "b"):
        base = tmp_path / name
        base.mkdir()
        project = copy_fixture("shared-services", base)
        (server_tmp / name).mkdir()
        os.chmod(server_tmp / name, 0o711)
        (base / "tmp").symlink_to(server_tmp / name)
        (base / "record").mkdir()
        procs.append((project, subprocess.Popen(
            [testfleet, "run", "-n", "3", *SERVICES, "--", "pytest", "--junit-xml=unit.xml", "tests"],
            cwd=project, env=env_for(project), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    ports = []
    for project, proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output
        assert junit_counts(project / "unit.xml")["tests"] == 27
        ports += [r["postgres"]["port"] for r in records(project.parent / "record")]
    assert len(set(ports)) == 6


def test_unknown_service_is_a_usage_error(testfleet, project):
    result = run([testfleet, "run", "--with", "mongodb", "--", "pytest", "tests"], cwd=project, env=env_for(project))
    assert result.returncode == 2
    assert "mongodb" in result.stderr


def test_generic_service_from_configuration(testfleet, tmp_path, server_tmp):
    project = tmp_path / "web"
    (project / "tests").mkdir(parents=True)
    (project / "testfleet.toml").write_text(
        '[services.web]\n'
        'command = ["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}", "--directory", "{dir}"]\n'
        'variables = { WEB_URL = "http://127.0.0.1:{port}/" }\n')
    (project / "tests" / "test_web.py").write_text(
        "import os, urllib.request\n"
        "def test_web_answers():\n"
        "    assert urllib.request.urlopen(os.environ['WEB_URL'], timeout=5).status == 200\n"
        "def test_web_is_ours():\n"
        "    assert os.environ['WEB_URL'].startswith('http://127.0.0.1:')\n")
    result = run([testfleet, "run", "-n", "2", "--with", "web", "--", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project, env=clean_env(TMPDIR=server_tmp))
    assert result.returncode == 0, result.stdout + result.stderr
    assert junit_counts(project / "unit.xml")["tests"] == 2
    assert list(server_tmp.iterdir()) == []


def test_sigkill_of_testfleet_then_clean_removes_the_rest(testfleet, project):
    env = env_for(project)
    proc = subprocess.Popen([testfleet, "run", "-n", "2", *SERVICES, "--", "pytest", "tests"], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    reports = project / "testfleet-reports"
    wait_for(lambda: any(p.exists() and '"event": "test"' in p.read_text()
                         for p in reports.glob("group-*/progress.jsonl")), what="a finished test")
    proc.kill()
    proc.communicate(timeout=60)
    tmpdir = project.parent / "tmp"
    # The servers die with testfleet (PR_SET_PDEATHSIG); their directories cannot remove themselves.
    assert list(tmpdir.iterdir()), "expected the killed run's directories to be left"
    result = run([testfleet, "clean"], cwd=project, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "removed" in result.stdout
    wait_for(lambda: list(tmpdir.iterdir()) == [], timeout=30, what="the leftovers to be gone")
    for record in records(project.parent / "record"):
        assert not port_open(record["postgres"]["port"])
        assert not port_open(record["redis"]["tcp_port"])


def test_wait_subcommand(testfleet, tmp_path):
    server = subprocess.Popen(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        port = int(line.split("port ")[1].split()[0])
        result = run([testfleet, "wait", f"localhost:{port}", "--timeout", "10", "--", "/bin/echo", "ready"],
                     cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.strip() == "ready", result.stderr
    finally:
        server.kill()
        server.wait()
    result = run([testfleet, "wait", "127.0.0.1:1", "--timeout", "1"], cwd=tmp_path)
    assert result.returncode == 3 and "127.0.0.1:1" in result.stderr
    result = run([testfleet, "wait", "nohost"], cwd=tmp_path)
    assert result.returncode == 2 and "HOST:PORT" in result.stderr
