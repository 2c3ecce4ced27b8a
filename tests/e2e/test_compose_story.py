"""Issue 17, the users' story: a project shaped like theirs (tests/fixtures/compose-story: `app` built from `.`
with the code mounted, PostgreSQL and Redis sidecars, `ports: ["5432"]`) run with their own command,
`testfleet run -n N --compose docker-compose.yml --service app -- pytest --cov=. --junit-xml=unit.xml .`, on
the compose backend (v2 and v1), and the same project on the native backend (`--with postgres --with redis`),
where an item applies to it. Each test checks what the user checks: the merged JUnit, the coverage data,
the GitHub annotations, the exit code and the messages.

- a Ctrl-C: no phantom passed test, the totals are the planned tests (item 2);
- a sidecar that never gets ready: --ready-timeout, and the limit named (item 3);
- the combined coverage data where a serial `pytest --cov` leaves it, a later `coverage xml` finds it (item 5);
- annotations at the failing test's own file and line, tests named by one ID (item 7);
- the merged JUnit's times and timestamp consistent with the groups' (item 9);
- the README's "from docker-compose run to testfleet" section is this project (item 10)."""

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, REPO, clean_env, compose_leftovers, require_docker, run, wait_for

USERS_COMMAND = ["pytest", "--cov=.", "--junit-xml=unit.xml", "."]

# A failing test at a known line of its own file, and one whose failure is raised in the code under test:
# the annotation points at the test's line that called it. The line numbers are asserted below.
FAILING_TESTS = '''\
from shop.pricing import total


def test_total_is_wrong():
    assert total([1, 2]) == 4  # line 5


class TestRefunds:
    def test_refund(self):
        total([-1])  # line 10
'''


def copy_story(base):
    """The story project under `base`, with the sidecars' Dockerfiles where its compose file finds them."""
    project = base / "compose-story"
    shutil.copytree(FIXTURES / "compose-story", project, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(FIXTURES / "compose-services" / "images", base / "compose-services" / "images")
    return project


def require_compose(command):
    answer = subprocess.run([*command.split(), "version", "--short"], capture_output=True, text=True,
                            env=clean_env())
    if answer.returncode != 0:
        pytest.fail(f"`{command}` does not run here: scripts/install-deps installs both compose versions")


def compose_args(*files):
    args = []
    for file in files:
        args += ["--compose", file]
    return [*args, "--service", "app"]


def run_record(project):
    return json.loads((project / "testfleet-reports" / "run.json").read_text())


def junit_testcases(path):
    return list(ET.parse(path).getroot().iter("testcase"))


def outcome_of(case):
    tags = {child.tag for child in case}
    return next((name for tag, name in (("error", "error"), ("failure", "failed"), ("skipped", "skipped"))
                 if tag in tags), "passed")


def progress_events(project):
    events = []
    for stream in sorted((project / "testfleet-reports").glob("group-*/progress.jsonl")):
        for line in stream.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # the last line of a stopped group may be cut short
    return events


def junit_key(nodeid):
    """(classname, name) pytest writes for a node ID."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def collected_ids(project):
    """The node IDs the users' command collects, as pytest itself lists them here."""
    listing = run(["/usr/bin/python3", "-m", "pytest", "--collect-only", "-q", "."], cwd=project)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    return [line for line in listing.stdout.splitlines() if "::" in line]


def epoch(timestamp):
    """pytest's suite timestamp (local time, no zone in pytest 7; a zone in pytest 8) as seconds."""
    stamp = datetime.fromisoformat(timestamp)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


# ---- One run each of the users' command with a failing test, on GitHub Actions: compose and native. --------

# The backends: compose v2 and v1 (their compose command), and native.
BACKENDS = {"compose v2": "docker compose", "compose v1": "docker-compose", "native": None}


@pytest.fixture(scope="module", params=list(BACKENDS))
def github_run(request, testfleet, tmp_path_factory):
    """The users' command on GitHub Actions (GITHUB_ACTIONS, a step summary), a test failing: its result."""
    base = tmp_path_factory.mktemp(request.param.replace(" ", "-"))
    project = copy_story(base)
    (project / "tests" / "test_refunds.py").write_text(FAILING_TESTS)
    summary = base / "step_summary.md"
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=summary, CI="true")
    env.pop("COVERAGE_FILE", None)
    compose = BACKENDS[request.param]
    if compose:
        require_docker()
        require_compose(compose)
        env["TESTFLEET_COMPOSE"] = compose
        backend = compose_args("docker-compose.yml")
    else:
        # As conftest's server_tmp, for the module: a directory PostgreSQL's user can enter.
        server_dir = Path(tempfile.mkdtemp(prefix="tf-e2e-", dir="/tmp"))
        server_dir.chmod(0o711)
        request.addfinalizer(lambda: shutil.rmtree(server_dir, ignore_errors=True))
        env["TMPDIR"] = str(server_dir)
        backend = ["--with", "postgres", "--with", "redis"]
    result = run([testfleet, "run", "-n", "3", *backend, "--", *USERS_COMMAND], cwd=project, env=env,
                 timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # the failing tests, nothing else
    if compose:
        assert compose_leftovers(run_record(project)["run_id"]) == []
    return {"compose": compose, "project": project, "output": output, "lines": result.stdout.splitlines(),
            "summary": summary}


def test_annotations_point_at_the_failing_tests_own_file_and_line(github_run):
    """Item 7: `::error file=F,line=L,title=T` with the test's own file and line (the assertion's; for a
    failure raised in shop/pricing.py, the test's line that called it), titles in one ID form (node IDs)."""
    errors = sorted(line for line in github_run["lines"] if line.startswith("::error "))
    assert errors, github_run["output"]
    assert len(errors) == 2, errors
    assert errors[0].startswith("::error file=tests/test_refunds.py,line=10,title=failed%3A "
                                "tests/test_refunds.py%3A%3ATestRefunds%3A%3Atest_refund::ValueError: a negative"
                                " price"), errors[0]
    assert errors[1].startswith("::error file=tests/test_refunds.py,line=5,title=failed%3A "
                                "tests/test_refunds.py%3A%3Atest_total_is_wrong::assert 3 == 4"), errors[1]
    summary = github_run["summary"].read_text()
    assert "<code>tests/test_refunds.py::TestRefunds::test_refund</code>" in summary
    assert "tests.test_refunds" not in summary and "tests.test_refunds" not in "".join(errors)


def test_the_combined_coverage_data_is_where_a_serial_run_leaves_it(github_run):
    """Item 5: ./.coverage, as `pytest --cov=.` alone leaves it, holding every group's lines; the last line
    of the coverage step says where each output went."""
    project = github_run["project"]
    data = project / ".coverage"
    assert f"coverage: the combined data in {data}; the term report above" in github_run["lines"], \
        github_run["output"]
    with sqlite3.connect(data) as db:
        files = {Path(path).relative_to("/code" if github_run["compose"] else project).as_posix()
                 for (path,) in db.execute("SELECT path FROM file")}
        assert {"shop/pricing.py", "tests/test_pricing.py", "tests/test_orders.py", "tests/test_cache.py",
                "tests/test_refunds.py"} <= files


def test_a_later_coverage_xml_step_finds_the_data(github_run, tmp_path):
    """Item 5, the users' next CI step: `coverage xml` where the code is (in the container for compose)."""
    project = github_run["project"]
    if github_run["compose"]:
        compose = [*github_run["compose"].split(), "-p", f"story{uuid.uuid4().hex[:8]}", "-f", "docker-compose.yml"]
        try:
            later = run([*compose, "run", "--rm", "--no-deps", "app", "python3", "-m", "coverage", "xml", "-o",
                         "later.xml"], cwd=project, timeout=600)
        finally:
            run([*compose, "down", "-v", "--remove-orphans", "--rmi", "local"], cwd=project, timeout=300)
    else:
        later = run(["/usr/bin/python3", "-m", "coverage", "xml", "-o", "later.xml"], cwd=project)
    assert later.returncode == 0, later.stdout + later.stderr
    lines = {(c.get("filename"), line.get("number"), line.get("hits"))
             for c in ET.parse(project / "later.xml").getroot().iter("class") for line in c.iter("line")}
    assert ("shop/pricing.py", "6", "1") in lines  # raise ValueError: run by TestRefunds only
    assert ("tests/test_orders.py", "23", "1") in lines and ("tests/test_cache.py", "21", "1") in lines


def test_merged_times_are_wall_clock_times(github_run):
    """Item 9: the suite's timestamp is the earliest group's and its time runs from there to the latest
    group's end; the root's time is the run's wall time, which holds it."""
    project = github_run["project"]
    groups = [ET.parse(p).getroot().find("testsuite")
              for p in sorted((project / "testfleet-reports").glob("group-*/junit.xml"))]
    assert len(groups) == 3
    root = ET.parse(project / "unit.xml").getroot()
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["pytest"]
    suite = suites[0]
    earliest = min(groups, key=lambda g: epoch(g.get("timestamp")))
    assert suite.get("timestamp") == earliest.get("timestamp")
    span = max(epoch(g.get("timestamp")) + float(g.get("time")) for g in groups) - epoch(earliest.get("timestamp"))
    assert float(suite.get("time")) == pytest.approx(span, abs=0.0015)
    assert float(root.get("time")) == pytest.approx(run_record(project)["wall_seconds"], abs=0.0006)
    assert float(root.get("time")) >= float(suite.get("time"))
    assert int(root.get("tests")) == int(suite.get("tests")) == run_record(project)["planned_tests"] == 17


# ---- Ctrl-C (item 2) ---------------------------------------------------------------------------------------

SLOW_TESTS = '''\
import time

import pytest


@pytest.mark.parametrize("i", range(4))
def test_slow(i):
    time.sleep(120)
'''


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_ctrl_c_leaves_no_phantom_and_the_totals_are_the_planned_tests(testfleet, tmp_path, server_tmp, backend):
    """Item 2: pytest, interrupted while a test runs, writes a testcase without a name into its JUnit. The
    merged report must not count it: its totals are the planned tests, each once, those that finished with
    their own outcome and the others errors saying the run was interrupted."""
    project = copy_story(tmp_path)
    (project / "tests" / "test_slow.py").write_text(SLOW_TESTS)
    compose = BACKENDS[backend]
    if compose:
        require_docker()
        require_compose(compose)
        args = compose_args("docker-compose.yml")
        env = clean_env(TESTFLEET_COMPOSE=compose)
    else:
        args = ["--with", "postgres", "--with", "redis"]
        env = clean_env(TMPDIR=server_tmp)
    proc = subprocess.Popen([testfleet, "run", "-n", "2", "--progress", "plain", *args, "--",
                             "pytest", "--junit-xml=unit.xml", "."], cwd=project, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: any(e.get("event") == "start" and "test_slow" in e.get("id", "")
                             for e in progress_events(project)), timeout=600, what="a slow test running")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, output

    # What each group's pytest wrote: the phantom is there, the case the merge must handle. Compose v1's `run`
    # client does not pass the SIGINT on: its groups are killed after the grace and write no report.
    group_reports = sorted((project / "testfleet-reports").glob("group-*/junit.xml"))
    group_cases = [c for p in group_reports for c in junit_testcases(p)]
    if compose == "docker-compose":
        assert group_reports == []
    else:
        assert any(c.get("name") is None for c in group_cases), "no group's pytest wrote a nameless testcase"

    merged = junit_testcases(project / "unit.xml")
    assert all(c.get("name") for c in merged)
    planned = collected_ids(project)
    assert len(planned) == run_record(project)["planned_tests"] == 19
    assert sorted((c.get("classname"), c.get("name")) for c in merged) == sorted(junit_key(i) for i in planned)
    outcomes = {(c.get("classname"), c.get("name")): outcome_of(c) for c in merged}
    # The tests that finished keep the outcome pytest gave them (in its report, and in the plugin's stream,
    # which is all there is of a group killed before its report), every other one is an error.
    reported = {(c.get("classname"), c.get("name")): outcome_of(c) for c in group_cases if c.get("name")}
    assert {key: outcomes[key] for key in reported} == reported
    finished = {junit_key(e["id"]): e["outcome"] for e in progress_events(project) if e.get("event") == "test"}
    assert {key: outcomes[key] for key in finished} == finished
    assert all(outcomes[junit_key(i)] == "error" for i in planned if junit_key(i) not in finished)
    root = ET.parse(project / "unit.xml").getroot()
    passed = sum(1 for outcome in finished.values() if outcome == "passed")
    assert passed >= 1
    assert int(root.get("tests")) == len(planned)
    assert int(root.get("tests")) - int(root.get("errors")) - int(root.get("failures")) - int(
        root.get("skipped")) == passed
    interrupted = [c for c in merged if outcome_of(c) == "error"]
    assert interrupted and all("interrupted (SIGINT)" in c.find("error").get("message") for c in interrupted)
    assert f"testfleet: {len(planned)} tests: {passed} passed" in output
    if compose:
        assert compose_leftovers(run_record(project)["run_id"]) == []


# ---- A sidecar that never gets ready (item 3) --------------------------------------------------------------

NEVER_READY = '''\
# db's healthcheck never passes, and Docker never gives up on it (it would take 1,000 failed checks).
services:
  db:
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1000
'''


@pytest.mark.parametrize("compose", [c for c in BACKENDS.values() if c])
def test_a_sidecar_that_never_gets_ready_fails_after_the_ready_timeout(testfleet, tmp_path, compose):
    """Item 3: --ready-timeout is the limit (not 180 s, not --timeout), the error names the sidecar, what it
    waited for and the limit, every test is an error saying why, and nothing is left."""
    require_docker()
    require_compose(compose)
    project = copy_story(tmp_path)
    (project / "never-ready.yml").write_text(NEVER_READY)
    result = run([testfleet, "run", "-n", "2", "--progress", "plain",
                  *compose_args("docker-compose.yml", "never-ready.yml"), "--ready-timeout", "5", "--timeout", "600",
                  "--", *USERS_COMMAND], cwd=project, timeout=900, env=clean_env(TESTFLEET_COMPOSE=compose))
    output = result.stdout + result.stderr
    assert result.returncode == 3, output
    # Not silence: what each worker awaits, and for how long, while it waits.
    assert re.search(r"worker 1: waiting for db \(healthcheck\), \d+s of 5s", output), output
    for group in (1, 2):
        assert re.search(rf"FAILED: worker {group}: its environment could not be provisioned:\n"
                         rf"compose project testfleet-\S+-g{group}: sidecar db \(container \S+\) not ready after "
                         rf"5\.0s \(--ready-timeout\): its healthcheck says starting", output), output
    merged = junit_testcases(project / "unit.xml")
    assert len(merged) == 15
    assert all(c.find("error").get("message").startswith("not run: worker ") for c in merged)
    assert compose_leftovers(run_record(project)["run_id"]) == []


def test_the_ready_timeout_from_the_configuration_and_in_help(testfleet, tmp_path):
    """Item 3: `ready-timeout` in testfleet.toml (or [tool.testfleet]) does what the flag does; --help names
    the flag and the default; a wrong value names the file, line and key."""
    require_docker()
    project = copy_story(tmp_path)
    (project / "never-ready.yml").write_text(NEVER_READY)
    (project / "testfleet.toml").write_text('compose = ["docker-compose.yml", "never-ready.yml"]\n'
                                            'service = "app"\nready-timeout = 3\n')
    result = run([testfleet, "run", "-n", "1", "--", *USERS_COMMAND], cwd=project, timeout=900)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "sidecar db" in result.stdout and "not ready after 3.0s (--ready-timeout)" in result.stdout
    assert compose_leftovers(run_record(project)["run_id"]) == []

    (project / "testfleet.toml").write_text('service = "app"\nready-timeout = 2.5\n')
    result = run([testfleet, "run", "--compose", "docker-compose.yml", "--", *USERS_COMMAND], cwd=project)
    assert result.returncode == 2
    assert "testfleet.toml:2" in result.stderr and "'ready-timeout' is 2.5" in result.stderr

    help_text = run([testfleet, "run", "--help"], cwd=project).stdout
    assert re.search(r"--ready-timeout INT.*\n?.*sidecars may take to become ready[^\n]*\n?[^\n]*\(default 180\)",
                     help_text), help_text


# ---- The README (item 10) ----------------------------------------------------------------------------------

def readme_section():
    text = (REPO / "README.md").read_text()
    start = text.index("### From `docker-compose run` to testfleet")
    end = re.compile(r"^##", re.M).search(text, start + 1)
    return text[start:end.start() if end else len(text)]


def test_the_readme_section_is_the_tested_project(testfleet):
    """Item 10: the README's compose file is this project's (its test service as it is, its sidecars but for
    their images), and every testfleet command it shows is one testfleet takes."""
    section = readme_section()
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert blocks, "the section shows no compose file"
    documented = yaml.safe_load(blocks[0])["services"]
    tested = yaml.safe_load((FIXTURES / "compose-story" / "docker-compose.yml").read_text())["services"]
    assert documented["app"] == {k: v for k, v in tested["app"].items() if k != "environment"} | {
        "environment": documented["app"]["environment"]}
    assert documented["app"]["build"] == "." and documented["app"]["volumes"] == [".:/code"]
    assert documented["db"]["ports"] == tested["db"]["ports"] == ["5432"]
    assert documented["db"]["healthcheck"] == tested["db"]["healthcheck"]
    assert set(documented) == set(tested)
    assert " ".join(["testfleet", "run", "-n", "6", "--compose", "docker-compose.yml", "--service", "app", "--",
                     *USERS_COMMAND]) in section
    for line in section.splitlines():
        if line.startswith("testfleet "):
            words = line.split()
            options = words[2:words.index("--")] if "--" in words else words[2:]
            help_text = run([testfleet, words[1], "--help"], cwd=REPO).stdout
            for word in options:
                if word.startswith("--"):
                    assert re.search(rf"(^|[\s,]){re.escape(word.split('=')[0])}\b", help_text, re.M), line
