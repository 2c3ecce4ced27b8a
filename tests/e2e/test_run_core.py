"""`testfleet run` end to end: the real binary on the basic fixture with real pytest."""

import json
from collections import Counter
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (FIXTURES, PYTHON, clean_env, copy_fixture, junit_cases, junit_counts, processes_with_env,
                      run, wait_for)


@pytest.fixture(scope="module")
def serial_cases(tmp_path_factory):
    """What a plain serial pytest reports for the basic fixture: the reference every merge must equal."""
    project = copy_fixture("basic", tmp_path_factory.mktemp("serial"))
    result = run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junit-xml=serial.xml", "tests"],
                 cwd=project)
    assert result.returncode == 1, result.stdout[-3000:]
    return junit_cases(project / "serial.xml")


@pytest.mark.parametrize("schedule", ["dynamic", "static"])
def test_merged_junit_equals_a_serial_run(testfleet, tmp_path, serial_cases, schedule):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "4", "--schedule", schedule, "--", PYTHON, "-m", "pytest",
                  "--junit-xml=unit.xml", "tests"], cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    merged = junit_cases(project / "unit.xml")
    assert merged == serial_cases
    counts = junit_counts(project / "unit.xml")
    assert counts["tests"] == sum(serial_cases.values())
    # Every group has its own log and JUnit under the reports directory.
    groups = sorted(p.name for p in (project / "testfleet-reports").glob("group-*"))
    assert groups == ["group-1", "group-2", "group-3", "group-4"]
    for group in groups:
        assert (project / "testfleet-reports" / group / "output.log").stat().st_size > 0
        assert (project / "testfleet-reports" / group / "junit.xml").exists()
    # A failed worker's output follows it, ninja-style.
    assert "FAILED: worker" in result.stdout
    assert "test_fails_on_assertion" in result.stdout


def test_chunks_and_one_group_give_the_same_results(testfleet, tmp_path, serial_cases):
    project = copy_fixture("basic", tmp_path)
    for args in (["-n", "3", "--algorithm", "chunks"], ["-n", "1"]):
        result = run([testfleet, "run", *args, "--", "pytest", "--junitxml", "out/unit.xml", "tests"], cwd=project)
        assert result.returncode == 1, result.stdout + result.stderr
        assert junit_cases(project / "out" / "unit.xml") == serial_cases


def test_pyargs_from_another_directory(testfleet, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(PYTHONPATH=FIXTURES / "basic" / "pkg")
    serial = run([PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "basicpkg.tests",
                  "--junit-xml=serial.xml"], cwd=elsewhere, env=env)
    assert serial.returncode == 1, serial.stdout
    result = run([testfleet, "run", "-n", "3", "--", PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs",
                  "basicpkg.tests", "--junit-xml=unit.xml"], cwd=elsewhere, env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert junit_cases(elsewhere / "unit.xml") == junit_cases(elsewhere / "serial.xml")
    assert sum(junit_cases(elsewhere / "unit.xml").values()) == 16


def test_group_environment_variables(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "--junit-xml=unit.xml",
                  "tests/test_environment.py"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = json.loads((project / "testfleet-reports" / "run.json").read_text())["run_id"]
    assert run_id in result.stdout


@pytest.mark.parametrize("schedule", ["dynamic", "static"])
@pytest.mark.parametrize("mode,how", [("kill", "killed by SIGKILL"), ("segv", "killed by SIGSEGV"),
                                      ("exit", "exit 3")])
def test_a_crash_costs_only_the_test_that_crashed(testfleet, tmp_path, serial_cases, schedule, mode, how):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "4", "--schedule", schedule, "--", "pytest", "--junit-xml=unit.xml",
                  "tests"], cwd=project, env=clean_env(TESTFLEET_FIXTURE_CRASH=mode))
    assert result.returncode == 1, result.stdout + result.stderr
    merged = junit_cases(project / "unit.xml")
    # The crashing test is an error naming the crash; every other test has its serial outcome, the ones its
    # runner had not reached included (they ran on a restarted runner or another worker).
    crashed = [k for k in merged if k[1] == "test_crashes_when_asked"]
    assert crashed == [("tests.faults.test_crash", "test_crashes_when_asked", "error")], crashed
    expected = Counter({k: v for k, v in serial_cases.items() if k[1] != "test_crashes_when_asked"})
    assert Counter({k: v for k, v in merged.items() if k[1] != "test_crashes_when_asked"}) == expected
    assert f"FAILED: worker" in result.stdout and how in result.stdout
    text = (project / "unit.xml").read_text()
    assert f"crashed ({how}) while running this test" in text
    assert "starting runner 2 in the same environment" in result.stdout
    record = json.loads((project / "testfleet-reports" / "run.json").read_text())
    assert record["restarts"] == 1
    placed = {t["id"]: t for t in record["tests"]}
    assert placed["tests/faults/test_crash.py::test_crashes_when_asked"]["cause"].startswith("worker ")
    assert sum(1 for t in record["tests"] if "cause" in t) == 1


def test_a_worker_that_collects_other_tests_is_named_and_the_suite_still_runs(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    # Worker 2's collection has a test more than the others': a suite whose collection depends on where it
    # runs would otherwise run tests twice or never.
    (project / "tests" / "test_depends_on_worker.py").write_text(
        "import os\nimport pytest\n\n"
        "@pytest.mark.parametrize('i', range(3 if os.environ.get('TESTFLEET_GROUP') == '2' else 2))\n"
        "def test_counted(i):\n    pass\n")
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "--junit-xml=unit.xml", "tests/test_depends_on_worker.py",
                  "tests/test_strings.py"], cwd=project)
    assert result.returncode == 3, result.stdout + result.stderr
    if "worker 2 collected other tests" in result.stdout:
        assert "extra: tests/test_depends_on_worker.py::test_counted[2]" in result.stdout, result.stdout
    else:  # worker 2 collected first: its collection is the reference, worker 1's lacks a test
        assert "worker 1 collected other tests than the first collection; missing: " \
               "tests/test_depends_on_worker.py::test_counted[2]" in result.stdout, result.stdout
    cases = junit_cases(project / "unit.xml")
    assert all(outcome == "passed" for _, _, outcome in cases), cases
    assert sum(cases.values()) == len({(c, n) for c, n, _ in cases})


def test_restarts_are_bounded(testfleet, tmp_path):
    """A suite that kills every runner: the restarts run out, and each test is reported once, never lost."""
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "2", "--max-worker-restarts", "1", "--", "pytest",
                  "--junit-xml=unit.xml", "tests/faults/test_crash.py", "tests/test_arithmetic.py"],
                 cwd=project, env=clean_env(TESTFLEET_FIXTURE_CRASH="kill"))
    assert result.returncode == 1, result.stdout + result.stderr
    merged = junit_cases(project / "unit.xml")
    assert sum(merged.values()) == len({(c, n) for c, n, _ in merged})  # each once
    assert ("tests.faults.test_crash", "test_crashes_when_asked", "error") in merged


def test_sigkill_of_a_group_from_outside(testfleet, tmp_path, serial_cases):
    project = copy_fixture("basic", tmp_path)
    proc = subprocess.Popen([testfleet, "run", "-n", "2", "--progress", "plain", "--", "pytest",
                             "--junit-xml=unit.xml", "tests"], cwd=project, env=clean_env(TESTFLEET_FIXTURE_HANG="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run_json = project / "testfleet-reports"
        # Wait until group 1 has finished a test, then kill its pytest with SIGKILL.
        progress = run_json / "group-1" / "progress.jsonl"
        wait_for(lambda: progress.exists() and '"event": "test"' in progress.read_text(), what="group 1 progress")
        # This run's worker 1 only: other runs on the machine (a benchmark, another test) are not ours.
        run_id = next(line.split()[2].rstrip(":") for line in iter(proc.stdout.readline, "")
                      if line.startswith("testfleet run "))
        ours = set(processes_with_env(f"TESTFLEET_RUN_ID={run_id}"))
        victims = [pid for pid in processes_with_env("TESTFLEET_GROUP=1") if pid in ours]
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        # The other group hangs on purpose: stop the run; partial results are merged.
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    merged = junit_cases(project / "unit.xml")
    # Every planned test is there; an interrupted pytest may add testcases of its own (collection errors).
    assert {(c, n) for c, n, _ in serial_cases} <= {(c, n) for c, n, _ in merged}


def test_ctrl_c_leaves_no_child_and_merges_partial_results(testfleet, tmp_path, serial_cases):
    project = copy_fixture("basic", tmp_path)
    proc = subprocess.Popen([testfleet, "run", "-n", "3", "--", "pytest", "--junit-xml=unit.xml", "tests"],
                            cwd=project, env=clean_env(TESTFLEET_FIXTURE_HANG="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        reports = project / "testfleet-reports"
        wait_for(lambda: (reports / "run.json").exists() or any(
            p.exists() and '"event": "test"' in p.read_text() for p in reports.glob("group-*/progress.jsonl")),
                 what="a finished test")
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches the whole foreground group
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output
    run_id = json.loads((project / "testfleet-reports" / "run.json").read_text())["run_id"]
    assert processes_with_env(f"TESTFLEET_RUN_ID={run_id}") == []
    merged = junit_cases(project / "unit.xml")
    assert {(c, n) for c, n, _ in serial_cases} <= {(c, n) for c, n, _ in merged}
    assert "interrupted" in (project / "unit.xml").read_text()


def test_a_signal_the_caller_ignores_stays_ignored(testfleet, tmp_path, serial_cases):
    """Under `nohup` (SIGHUP ignored) a SIGHUP neither stops the run nor reaches the groups' tests."""
    project = copy_fixture("basic", tmp_path)
    proc = subprocess.Popen([testfleet, "run", "-n", "2", "--", "pytest", "--junit-xml=unit.xml", "tests"],
                            cwd=project, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        reports = project / "testfleet-reports"
        wait_for(lambda: any(p.exists() and '"event": "test"' in p.read_text()
                             for p in reports.glob("group-*/progress.jsonl")), what="a finished test")
        os.killpg(proc.pid, signal.SIGHUP)  # testfleet and every group's pytest
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, output  # the basic fixture's own failures, not 129
    assert "SIGHUP" not in output, output
    merged = junit_cases(project / "unit.xml")
    assert merged == serial_cases


def test_timeout_stops_a_hung_group_and_names_the_test(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "2", "--timeout", "8", "--kill-grace", "2", "--", "pytest",
                  "--junit-xml=unit.xml", "tests/faults", "tests/test_arithmetic.py"], cwd=project,
                 env=clean_env(TESTFLEET_FIXTURE_HANG="ignore-term"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "timed out" in result.stdout
    text = (project / "unit.xml").read_text()
    assert "timed out: worker" in text and "while running this test" in text
    cases = junit_cases(project / "unit.xml")
    hung = [k for k in cases if k[1] == "test_hangs_when_asked"]
    assert hung and hung[0][2] == "error"


def test_dry_run_prints_commands_and_runs_nothing(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "2", "--dry-run", "--", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project)
    assert result.returncode == 0, result.stderr
    assert "worker 1" in result.stdout and "worker 2" in result.stdout
    assert "TESTFLEET_GROUP=1" in result.stdout
    assert "--junit-xml=" in result.stdout
    assert not (project / "unit.xml").exists()
    assert not list((project / "testfleet-reports").glob("group-*/output.log"))


def test_plan_json_and_stored_durations(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    (project / ".test_durations").unlink(missing_ok=True)
    plan = run([testfleet, "plan", "-n", "3", "--format", "json", "--", "pytest", "tests"], cwd=project)
    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    ids = [t["id"] for g in document["groups"] for t in g["tests"]]
    assert len(ids) == len(set(ids)) == document["tests"] == 334
    assert all(g["tests"] for g in document["groups"])
    assert document["estimated_tests"] == 334

    result = run([testfleet, "run", "-n", "3", "--store-durations", "--", "pytest", "tests"], cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    durations = json.loads((project / ".test_durations").read_text())
    assert set(durations) == set(ids)
    assert list(durations) == sorted(durations)
    text = run([testfleet, "plan", "-n", "3", "--", "pytest", "tests"], cwd=project)
    assert "estimated" not in text.stdout
    assert "group 3" in text.stdout


def test_fewer_tests_than_groups(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "8", "--", "pytest", "--junit-xml=unit.xml",
                  "tests/test_arithmetic.py::test_integer_division_rounds_down",
                  "tests/test_arithmetic.py::test_float_nan_is_not_equal_to_itself"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "only 2 tests for 8 workers" in result.stdout
    assert junit_counts(project / "unit.xml")["tests"] == 2


def test_collection_failure_is_a_clear_error(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "broken"], cwd=project)
    assert result.returncode == 1
    assert "could not collect" in result.stderr
    assert "test_import_error.py" in result.stderr


def test_not_a_command_and_bad_config_are_usage_errors(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "--", "no-such-pytest-binary", "tests"], cwd=project)
    assert result.returncode == 2, result.stderr
    result = run([testfleet, "run", "--", "/nonexistent/pytest", "tests"], cwd=project)
    assert result.returncode == 2 and "no such executable" in result.stderr
    (project / "testfleet.toml").write_text('groups = 2\nflavour = "mint"\n')
    result = run([testfleet, "run", "--", "pytest", "tests"], cwd=project)
    assert result.returncode == 2
    assert "testfleet.toml:2" in result.stderr and "flavour" in result.stderr
    (project / "testfleet.toml").write_text('groups = "two"\n')
    result = run([testfleet, "run", "--", "pytest", "tests"], cwd=project)
    assert result.returncode == 2 and "groups" in result.stderr and "number" in result.stderr


def test_configuration_from_pyproject_and_flags_win(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    (project / "pyproject.toml").write_text(
        '[tool.testfleet]\ngroups = 3\ncommand = ["pytest", "--junit-xml=unit.xml", "tests/test_strings.py"]\n')
    result = run([testfleet, "run"], cwd=project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "over 3 workers" in result.stdout
    result = run([testfleet, "run", "-n", "2"], cwd=project)
    assert "over 2 workers" in result.stdout


def test_generic_runner(testfleet, tmp_path):
    project = copy_fixture("generic-runner", tmp_path)
    listing = run([PYTHON, "runner.py", "--list"], cwd=project)
    assert listing.returncode == 0
    ids = [line for line in listing.stdout.splitlines() if line.strip()]
    result = run([testfleet, "run", "-n", "3", "--list-command", f"{PYTHON} runner.py --list", "--", PYTHON,
                  "runner.py", "--from-file", "{tests_file}", "--junit", "{junit}"], cwd=project)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    merged = project / "testfleet-reports" / "junit.xml"
    assert junit_counts(merged)["tests"] == len(ids)


def test_github_actions_summary_annotations_and_folded_logs(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    summary = tmp_path / "step_summary.md"
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "--junit-xml=unit.xml", "tests"], cwd=project,
                 env=clean_env(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=summary, CI="true"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines.count("::endgroup::") == 2
    assert any(line.startswith("::group::testfleet worker 1") for line in lines)
    errors = [line for line in lines if line.startswith("::error ")]
    assert 1 <= len(errors) <= 10
    assert all("\n" not in e for e in errors)
    assert any("file=tests/test_outcomes.py" in e for e in errors)
    text = summary.read_text()
    assert "| 335 | 316 | 7 | 4 | 8 | 0 |" in text
    assert "### Failures (11)" in text and "test_fails_on_assertion" in text
    # Plain lines in CI: no status area redrawn (the logs themselves may hold colours of their own).
    assert "\x1b[J" not in result.stdout and "testfleet: \x1b[1m" not in result.stdout


def test_gitlab_sections(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "tests/test_strings.py"], cwd=project,
                 env=clean_env(GITLAB_CI="true", CI="true"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("section_start:") == 2 and result.stdout.count("section_end:") == 2
    assert "[collapsed=true]" in result.stdout


def test_a_malformed_group_report_is_named_and_the_rest_merged(testfleet, tmp_path):
    project = copy_fixture("generic-runner", tmp_path)
    ids = [line for line in run([PYTHON, "runner.py", "--list"], cwd=project).stdout.splitlines() if line.strip()]
    # Group 2's report is cut short after the runner wrote it, as a full disk or a killed writer would leave it.
    script = ('"$0" runner.py --from-file "$1" --junit "$2"; rc=$?; '
              'if [ "$TESTFLEET_GROUP" = 2 ]; then head -c 300 "$2" > "$2.cut"; mv "$2.cut" "$2"; fi; exit $rc')
    result = run([testfleet, "run", "-n", "3", "--list-command", f"{PYTHON} runner.py --list", "--", "/bin/sh", "-c",
                  script, PYTHON, "{tests_file}", "{junit}"], cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "group-2/junit.xml:" in result.stdout
    merged = project / "testfleet-reports" / "junit.xml"
    cases = junit_cases(merged)
    assert sum(cases.values()) >= len(ids)
    assert {name for _, name, _ in cases} >= set(ids)
    assert "not reported: worker 2" in merged.read_text()


def test_nothing_collected_fails_unless_allowed(testfleet, tmp_path):
    """pytest exits 5 when it collects nothing; so does testfleet, saying where it collected, so that CI never
    goes green with nothing run."""
    project = copy_fixture("basic", tmp_path)
    argv = [testfleet, "run", "-n", "2", "--", "pytest", "--junit-xml=unit.xml", "-k", "no_such_test", "tests"]
    result = run(argv, cwd=project)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "no tests were collected" in result.stdout and str(project) in result.stdout, result.stdout
    assert "--allow-no-tests" in result.stdout
    allowed = run([*argv[:2], "--allow-no-tests", *argv[2:]], cwd=project)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert junit_counts(project / "unit.xml")["tests"] == 0
