#!/usr/bin/python3
"""The example benchmark: what the users' own suite gains, examples/django-api (a Django + PostgreSQL + Redis
API with ~450 tests, some of which sleep while Redis expires keys, some of which work through thousands of
rows), timed four ways on this machine in one run:

    serial              pytest                                  on one PostgreSQL + Redis pair started here
    xdist -n N          pytest -p xdist -n N                    on that same pair, shared by N workers
    testfleet native    testfleet run -n N --with postgres --with redis -- pytest
    testfleet compose   testfleet run -n N --compose docker-compose.yml --service app -- pytest

Every contender runs `pytest --junit-xml=unit.xml` (no coverage: it would slow them all alike) on a fresh
copy of the example in a temporary directory. Before the timed runs, one untimed `testfleet run
--store-durations` records the tests' durations, as a user's first run would, so that both testfleet runs
split by them; one untimed compose run builds the example's images (FROM debian:bookworm-slim), so that the
timed compose run measures running, not building. xdist's row also says how many tests failed: on a shared
database and cache it is fast and wrong, which is why the example exists.

A full run (not --quick) replaces its own section of BENCHMARKS.md at the repository root, between
`<!-- example-benchmark:start -->` and `<!-- example-benchmark:end -->`. The compose row needs a Docker engine
(DOCKER_HOST, see scripts/docker-engine.sh); without one the benchmark stops with an error unless
--skip-compose is given, and then the row says it was not measured. Exit status: 0 measured (the testfleet
runs passed every test), 2 bad usage or a run that failed.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from benchmarks_md import load_at_start, machine_description, replace_section

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(REPO, "examples", "django-api")
PYTEST = ["pytest", "-p", "no:cacheprovider", "--junit-xml=unit.xml"]
RUN_LEFTOVERS = ("__pycache__", ".pytest_cache", "*.mo", "testfleet-reports", "unit.xml", "coverage.xml",
                 ".coverage", ".coverage.*", ".test_durations")
TIMEOUT = 1800


class BenchmarkError(Exception):
    pass


def clean_environment(**extra):
    """A user's shell: our Python first, no servers, no leftovers of a surrounding test run."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TESTFLEET_", "PYTEST_", "PG"))
           and k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "COVERAGE_FILE", "PYTHONPATH")}
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin:" + env.get("PATH", "")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, process, log_path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise BenchmarkError(f"{what} did not listen on port {port} (log: {log_path})")


class SharedServers:
    """One PostgreSQL and one Redis for the serial and xdist runs, as a developer's docker-compose or local
    servers would be: every process of a run talks to the same two. PostgreSQL runs as user postgres when
    we are root (it refuses to run as root)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "servers")
        os.makedirs(self.dir)
        self.pg_port, self.redis_port = free_port(), free_port()
        self.postgres = self.redis = None
        self.as_postgres = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        versions = sorted((d for d in os.listdir("/usr/lib/postgresql") if d.isdigit()), key=int)
        if not versions:
            raise BenchmarkError("no PostgreSQL server in /usr/lib/postgresql (apt-get install postgresql)")
        self.bin = os.path.join("/usr/lib/postgresql", versions[-1], "bin")

    def __enter__(self):
        data = os.path.join(self.dir, "pg")
        log = os.path.join(self.dir, "postgres.log")
        with open(os.path.join(self.dir, "initdb.log"), "wb") as out:
            if subprocess.run([*self.as_postgres, os.path.join(self.bin, "initdb"), "-D", data, "-U", "postgres",
                               "-A", "trust", "--no-sync"], stdout=out, stderr=subprocess.STDOUT).returncode:
                raise BenchmarkError(f"initdb failed (log: {out.name})")
        with open(log, "wb") as out:
            self.postgres = subprocess.Popen(
                [*self.as_postgres, os.path.join(self.bin, "postgres"), "-D", data, "-p", str(self.pg_port),
                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_port(self.pg_port, "PostgreSQL", self.postgres, log)
        log = os.path.join(self.dir, "redis.log")
        with open(log, "wb") as out:
            self.redis = subprocess.Popen(
                ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for_port(self.redis_port, "Redis", self.redis, log)
        return self

    def variables(self):
        return {"DATABASE_URL": f"postgresql://postgres:postgres@127.0.0.1:{self.pg_port}/postgres",
                "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0"}

    def __exit__(self, *exc):
        for process in (self.redis, self.postgres):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def copy_example(workdir, name):
    target = os.path.join(workdir, name)
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(*RUN_LEFTOVERS))
    return target


def timed(command, cwd, log_path, env, expect_success=True):
    """Runs `command`; returns (wall seconds, exit code). Its output goes to `log_path`."""
    with open(log_path, "wb") as log:
        started = time.monotonic()
        try:
            completed = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as expired:
            raise BenchmarkError(f"{' '.join(command)} did not finish within {TIMEOUT} s (log: {log_path})") \
                from expired
        except OSError as error:
            raise BenchmarkError(f"cannot run {command[0]}: {error.strerror}") from error
        elapsed = time.monotonic() - started
    if expect_success and completed.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = "".join(log.readlines()[-20:])
        raise BenchmarkError(f"{' '.join(command)} exited with {completed.returncode} in {cwd}:\n{tail}")
    return elapsed, completed.returncode


def junit_outcome(path):
    """(tests, failed) of a JUnit file, failures and errors counted from the testcases."""
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    failed = sum(1 for case in cases if any(child.tag in ("failure", "error") for child in case))
    return len(cases), failed


def version_of(command):
    try:
        output = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                timeout=60, env=clean_environment()).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = output.strip().splitlines()
    return lines[-1].strip() if lines else "unknown"


def docker_answers(env):
    try:
        return subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], env=env,
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def group_span(project):
    """Seconds from the first group's start to the last group's end, from testfleet's run.json."""
    with open(os.path.join(project, "testfleet-reports", "run.json"), encoding="utf-8") as run_file:
        groups = json.load(run_file)["groups"]
    return max(g["ended"] for g in groups) - min(g["started"] for g in groups)


def measure(options, workdir):
    binary = options.binary
    n = str(options.groups)
    logs = os.path.join(workdir, "logs")
    os.makedirs(logs)
    tmp = os.path.join(workdir, "tmp")
    os.makedirs(tmp)
    for path in (workdir, tmp):
        os.chmod(path, 0o711)  # native servers run as user postgres and must reach their directories
    env = clean_environment(TMPDIR=tmp)
    results = {"rows": [], "groups": options.groups, "load_start": os.getloadavg()[0]}

    # Durations, as a user's first `--store-durations` run records them; both testfleet runs use them.
    durations_source = copy_example(workdir, "durations")
    print("recording durations (untimed) ...", file=sys.stderr)
    timed([binary, "run", "-n", n, "--with", "postgres", "--with", "redis", "--store-durations", "--", *PYTEST],
          durations_source, os.path.join(logs, "store-durations.log"), env)
    durations_file = os.path.join(durations_source, ".test_durations")

    def with_durations(name):
        project = copy_example(workdir, name)
        shutil.copy(durations_file, os.path.join(project, ".test_durations"))
        return project

    def row(label, name, command, project, run_env, expect_success):
        print(f"timing {name} ...", file=sys.stderr)
        best = None
        for attempt in range(options.repeat):
            shutil.rmtree(os.path.join(project, "testfleet-reports"), ignore_errors=True)
            wall, code = timed(command, project, os.path.join(logs, f"{label}-{attempt + 1}.log"), run_env,
                               expect_success)
            tests, failed = junit_outcome(os.path.join(project, "unit.xml"))
            if best is None or wall < best["wall"]:
                best = {"label": label, "name": name, "wall": wall, "exit": code, "tests": tests, "failed": failed,
                        "span": group_span(project) if command[0] == binary else None}
        results["rows"].append(best)
        return best

    with SharedServers(workdir) as servers:
        shared_env = dict(env, **servers.variables())
        serial = row("serial", "serial pytest", PYTEST, copy_example(workdir, "serial"), shared_env, True)
        row("xdist", f"pytest-xdist -n {n}, one shared PostgreSQL + Redis", [*PYTEST, "-p", "xdist", "-n", n],
            copy_example(workdir, "xdist"), shared_env, False)
    row("native", f"testfleet run -n {n} --with postgres --with redis",
        [binary, "run", "-n", n, "--with", "postgres", "--with", "redis", "--", *PYTEST],
        with_durations("native"), env, True)

    if options.skip_compose:
        results["compose_skipped"] = "--skip-compose"
    elif not docker_answers(env):
        raise BenchmarkError(f"no Docker engine answers at DOCKER_HOST={env.get('DOCKER_HOST', '(unset)')}: start "
                             "one with `eval \"$(scripts/docker-engine.sh start)\"`, or pass --skip-compose")
    else:
        compose = [binary, "run", "-n", n, "--compose", "docker-compose.yml", "--service", "app", "--", *PYTEST]
        print("building the compose images (untimed) ...", file=sys.stderr)
        timed(compose, with_durations("compose-warmup"), os.path.join(logs, "compose-warmup.log"), env)
        row("compose", f"testfleet run -n {n} --compose docker-compose.yml --service app", compose,
            with_durations("compose"), env, True)

    results["serial"] = serial["wall"]
    with open(durations_file, encoding="utf-8") as durations:
        recorded = json.load(durations)
    results["durations_total"] = sum(recorded.values())
    results["durations_longest"] = max(recorded.values())
    return results


def format_section(results, machine, software, date):
    n = results["groups"]
    rows = []
    for r in results["rows"]:
        outcome = (f"{r['failed']} of {r['tests']} failed" if r["failed"] else f"all {r['tests']} passed")
        speedup = results["serial"] / r["wall"]
        rows.append(f"| {r['name']} | {r['wall']:.2f} s | {speedup:.2f}x | {outcome} |")
    if "compose_skipped" in results:
        rows.append(f"| testfleet run -n {n} --compose docker-compose.yml --service app | not measured "
                    f"({results['compose_skipped']}) | | |")
    spans = [f"{r['label']} {r['span']:.2f} s of {r['wall']:.2f} s" for r in results["rows"] if r["span"] is not None]
    lines = [
        f"## Example benchmark: examples/django-api, {n} groups",
        "",
        f"Measured {date} by `bench/example_benchmark.py`, one after the other in one run.",
        "",
        f"- Machine: {machine}.",
        f"- Software: {software}.",
        f"- Suite: the example's {results['rows'][0]['tests']} tests, `pytest --junit-xml=unit.xml` (no "
        f"coverage); their recorded durations sum to {results['durations_total']:.2f} s, the longest "
        f"{results['durations_longest']:.2f} s. Both testfleet runs split by the `.test_durations` of an "
        "untimed first `--store-durations` run; the compose images were built by an untimed run before.",
        "- serial and xdist run against one PostgreSQL and one Redis started by the benchmark (as a developer's "
        "local servers); testfleet gives every group its own.",
        "",
        "| runner | wall time | speed-up over serial | tests |",
        "|---|---|---|---|",
        *rows,
        "",
        "Within testfleet's wall time, from the first group's start to the last group's end (the rest is "
        "collection, server or project start-up and merging): " + "; ".join(spans) + ".",
    ]
    load_end = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    lines += ["", f"Load average at the start: {results['load_start']:.2f}, at the end: {load_end:.2f}, on {cpus} "
              "logical CPUs."]
    if results["load_start"] > cpus:
        lines += ["The machine was busy with other work when the run started: these figures are slower than a "
                  "quiet machine's."]
    if n > cpus:
        lines += [
            f"{n} groups on {cpus} cores: the suite is mostly CPU work (Django's test client and ORM, and each "
            "group's start-up: interpreter, Django, migrations), so the parallel runs share the few cores, and "
            f"these figures understate what {n} groups gain on {n} free cores."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "testfleet"), help="testfleet binary")
    parser.add_argument("-n", "--groups", type=int, default=4, help="groups and xdist workers (default 4)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each contender, best kept (default 1)")
    parser.add_argument("--skip-compose", action="store_true", help="no Docker here: leave the compose row out")
    parser.add_argument("--quick", action="store_true", help="print the section; do not write BENCHMARKS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, reports)")
    options = parser.parse_args()
    if options.groups < 1 or options.repeat < 1:
        parser.error("--groups and --repeat must be at least 1")
    if not os.access(options.binary, os.X_OK):
        parser.error(f"no testfleet binary at {options.binary}: build it (scripts/build)")
    options.binary = os.path.abspath(options.binary)

    machine = machine_description() + load_at_start()
    software = ", ".join([
        f"Python {platform.python_version()}",
        f"Django {version_of(['/usr/bin/python3', '-c', 'import django; print(django.get_version())'])}",
        version_of(["/usr/bin/python3", "-m", "pytest", "--version"]),
        f"pytest-xdist {version_of(['/usr/bin/python3', '-c', 'import xdist; print(xdist.__version__)'])}",
        version_of([options.binary, "--version"]),
    ])
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    # Under /tmp, not a deep TMPDIR: the native servers (user postgres) must reach it.
    workdir = tempfile.mkdtemp(prefix="tf-example-bench-", dir="/tmp")
    try:
        results = measure(options, workdir)
    except BenchmarkError as error:
        print(f"example benchmark: {error}\n(logs and copies kept in {workdir})", file=sys.stderr)
        return 2
    if not options.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    section = format_section(results, machine, software, date)
    print(section)
    if not options.quick:
        replace_section(os.path.join(REPO, "BENCHMARKS.md"), "example-benchmark", section)
        print("\nwritten to BENCHMARKS.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
