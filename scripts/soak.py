#!/usr/bin/env python3
"""Soak: the same small suite run again and again on each backend, reporting every run that lost a test,
left something behind or gave a different result. Not for CI: it takes hours.

    scripts/soak.py                                  200 runs on each backend (compose needs DOCKER_HOST)
    scripts/soak.py --backend native --runs 30
    scripts/soak.py --minutes 60 --log soak.jsonl    stop after an hour; one JSON line per run

Each run copies tests/fixtures/faults (24 tests, each writing to and reading from its group's own PostgreSQL
and Redis) into a fresh folder and runs it with 4 groups, `--with postgres --with redis` or `--compose
docker-compose.yml --service app`, in its own TMPDIR and XDG_RUNTIME_DIR. The backends take turns. A run
is good when it exits 0, its merged JUnit holds every one of the 24 tests once with the same outcome as the
first run of that backend, and nothing is left: no process, temporary directory, state file, open port,
container, network or volume of the run. The summary (also on Ctrl-C) gives per backend: runs, good runs,
runs with a lost test, with a leak, with a different result, and the run time's median and range.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES / "faults"))
import leftovers as lo  # noqa: E402

NO_ENGINE = "unix:///nonexistent/testfleet-soak/docker.sock"


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTFLEET_FIXTURE")}
    env.pop("PYTEST_ADDOPTS", None)
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin:" + env.get("PATH", "")
    return env


class Backend:
    def __init__(self, name, args, work):
        self.name = name
        self.args = args
        self.work = work
        self.compose = name == "compose"
        self.reference = None
        self.records = []

    def run_once(self, number):
        base = self.work / f"{self.name}-{number:04}"
        project = lo.copy_project(FIXTURES, base, compose=self.compose)
        sandbox = lo.Sandbox(base / "sandbox")
        env = sandbox.env(base_env(), **({} if self.compose else {"DOCKER_HOST": NO_ENGINE}))
        backend = (["--compose", "docker-compose.yml", "--service", "app"] if self.compose else
                   ["--with", "postgres", "--with", "redis"])
        launched = lo.Launched([self.args.binary, "run", "-n", str(self.args.groups), "--progress", "plain",
                                *backend, "--", "pytest", "-q", "--tb=short", "--junit-xml=unit.xml"],
                               project, env, base / "testfleet.log")
        problems = []
        try:
            code = launched.wait(timeout=1800)
        except AssertionError as error:
            code = None
            problems.append(str(error).splitlines()[0])
        seconds = time.monotonic() - launched.started
        output = launched.output()
        run_id = launched.run_id()
        junit = project / "unit.xml"
        outcomes = {f"{c}::{n}": [o for o, _ in results] for (c, n), results in lo.junit_cases(junit).items()} \
            if junit.exists() else {}
        record = {"backend": self.name, "run": number, "run_id": run_id, "exit": code, "seconds": round(seconds, 1),
                  "tests": len(outcomes), "lost": [], "leaked": [], "different": []}
        if self.reference is None and code == 0 and len(outcomes) == 24:
            self.reference = {"exit": code, "outcomes": outcomes}
        if self.reference is not None:
            record["lost"] = sorted(set(self.reference["outcomes"]) - set(outcomes))
            record["different"] = sorted(k for k, v in outcomes.items() if self.reference["outcomes"].get(k) != v)
            if code != self.reference["exit"]:
                record["different"].insert(0, f"exit {code}")
        elif len(outcomes) != 24:
            record["lost"] = [f"{24 - len(outcomes)} of 24 tests"]
        if run_id:
            record["leaked"] = lo.settled_leftovers(run_id, sandbox, output, compose=self.compose)
            if record["leaked"]:
                lo.kill_leftover_processes(run_id, sandbox)
                if self.compose:
                    lo.remove_compose_resources(run_id)
        else:
            problems.append("no run id in the output")
        record["problems"] = problems
        record["good"] = not (problems or record["lost"] or record["leaked"] or record["different"] or code != 0)
        self.records.append(record)
        if record["good"] and not self.args.keep:
            shutil.rmtree(base, ignore_errors=True)
        return record

    def summary(self):
        runs = len(self.records)
        if runs == 0:
            return f"{self.name}: no run"
        seconds = [r["seconds"] for r in self.records]
        count = lambda key: sum(1 for r in self.records if r[key])  # noqa: E731
        return (f"{self.name}: {runs} runs, {sum(r['good'] for r in self.records)} good; "
                f"lost a test: {count('lost')}, leaked: {count('leaked')}, different result: {count('different')}, "
                f"other problems: {count('problems')}; run time median {statistics.median(seconds):.1f}s "
                f"(min {min(seconds):.1f}s, max {max(seconds):.1f}s)")


def describe(record):
    if record["good"]:
        return "good"
    parts = []
    if record["lost"]:
        parts.append(f"LOST {len(record['lost'])}: {record['lost'][:3]}")
    if record["leaked"]:
        parts.append(f"LEAKED {len(record['leaked'])}: {record['leaked'][:3]}")
    if record["different"]:
        parts.append(f"DIFFERENT: {record['different'][:3]}")
    if record["problems"]:
        parts.append(f"PROBLEM: {record['problems']}")
    if record["exit"] != 0 and not record["different"]:
        parts.append(f"exit {record['exit']}")
    return "; ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["native", "compose", "both"], default="both")
    parser.add_argument("--runs", type=int, default=200, help="runs per backend (default 200)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--binary", default=str(REPO / "build" / "testfleet"))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None, help="append one JSON line per run to this file")
    parser.add_argument("--keep", action="store_true", help="keep the folders of good runs too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-", dir=args.work))
    names = ["native", "compose"] if args.backend == "both" else [args.backend]
    backends = [Backend(name, args, work) for name in names]
    stop_at = time.monotonic() + args.minutes * 60 if args.minutes else None
    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"soak: up to {args.runs} runs on {', '.join(names)} with {args.groups} groups, {version}, in {work}",
          flush=True)
    try:
        for number in range(1, args.runs + 1):
            for backend in backends:
                if stop_at is not None and time.monotonic() > stop_at:
                    raise StopIteration
                record = backend.run_once(number)
                print(f"{backend.name} run {number:3}: exit {record['exit']}, {record['tests']} tests, "
                      f"{record['seconds']:.1f}s: {describe(record)}", flush=True)
                if args.log:
                    with open(args.log, "a") as log:
                        log.write(json.dumps(record) + "\n")
    except (KeyboardInterrupt, StopIteration):
        print("soak: stopped", flush=True)
    print("summary:")
    for backend in backends:
        print("  " + backend.summary())
    bad = sum(not r["good"] for b in backends for r in b.records)
    if not bad and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
