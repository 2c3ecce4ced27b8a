#!/usr/bin/env python3
"""testfleet receiving SIGINT, SIGTERM or SIGHUP at a random moment, many times over.

    scripts/signal-storm.py                          50 repetitions on the native backend
    scripts/signal-storm.py --backend compose -r 20  on the compose backend (DOCKER_HOST: a live engine)
    scripts/signal-storm.py --seed 7                 the same moments and signals again

First one run without a signal sets the reference: its tests, its result (every test passes) and its
duration (--max-delay skips it, for CI). Then each repetition starts the same run (tests/fixtures/faults,
4 groups, PostgreSQL and Redis per group) in a fresh copy, sends one signal, chosen at random, after a delay
drawn uniformly from zero to that duration (so it lands in collection, provisioning, the groups' run, the merge or after the end), and
checks what the issue promises:
  - the exit code is 128 + the signal (129, 130, 143), or 0 when the run had ended first;
  - the output names the signal;
  - once the run had planned its groups, the merged JUnit holds every planned test: its result, or an error
    naming why it has none;
  - nothing is left: no process of the run (groups, servers, compose clients), no temporary directory or
    state file, no open port, no container, network or volume.
Every repetition prints one line; the exit status is 0 when all passed. Runs are isolated in their own
TMPDIR and XDG_RUNTIME_DIR under --work (kept with --keep, for a post-mortem).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES / "faults"))
import leftovers as lo  # noqa: E402

SIGNALS = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
NO_ENGINE = "unix:///nonexistent/testfleet-signal-storm/docker.sock"
PLANNED = re.compile(r"testfleet run \S+: (\d+) tests in (\d+) groups")
# The last of these lines printed before the signal tells where it landed.
PHASES = [("collecting tests", "collection"), ("testfleet run ", "provisioning"), (" ready in ", "provisioning"),
          (" started: ", "groups running"), ("testfleet: received", "stopping"), ("testfleet: ", "merged")]


def base_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESTFLEET_FIXTURE")}
    env.pop("PYTEST_ADDOPTS", None)
    env["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin:" + env.get("PATH", "")
    return env


class Runner:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.compose = args.backend == "compose"

    def start(self, name):
        base = self.work / name
        project = lo.copy_project(FIXTURES, base, compose=self.compose)
        sandbox = lo.Sandbox(base / "sandbox")
        env = sandbox.env(base_env(), **({} if self.compose else {"DOCKER_HOST": NO_ENGINE}))
        backend = (["--compose", "docker-compose.yml", "--service", "app"] if self.compose else
                   ["--with", "postgres", "--with", "redis"])
        argv = [self.args.binary, "run", "-n", str(self.args.groups), "--progress", "plain", *backend, "--",
                "pytest", "-q", "--tb=short", "--junit-xml=unit.xml"]
        return project, sandbox, lo.Launched(argv, project, env, base / "testfleet.log")

    def leftovers(self, project, sandbox, launched):
        output = launched.output()
        run_id = launched.run_id()
        if run_id:
            return lo.settled_leftovers(run_id, sandbox, output, compose=self.compose)
        # Stopped before it printed its id: whatever ran in its sandbox or for its project directory.
        deadline = time.monotonic() + 10
        while True:
            left = lo.leftover_processes("(none)", sandbox) + sandbox.files_left()
            if self.compose:
                left += lo.compose_containers_of(project)
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)


def phase_at(output, chars_before):
    seen = output[:chars_before]
    last, where = -1, "before any output"
    for marker, name in PHASES:
        index = seen.rfind(marker)
        if index > last:
            last, where = index, name
    return where


def judge(runner, reference, project, sandbox, launched, sig, sent, output_at_signal):
    """The problems of one repetition (empty: it behaved)."""
    problems = []
    code = launched.proc.returncode
    output = launched.output()
    name = SIGNALS[sig]
    finished_first = code == 0 and "testfleet: received" not in output
    # Killed by the signal itself, before testfleet took its signals over: the shell sees 128 + N too.
    died_early = code == -sig and not output
    if sent and not finished_first and not died_early:
        if code != 128 + sig:
            problems.append(f"exit {code}, expected {128 + sig} for {name}")
        if name not in output and "interrupted" not in output:
            problems.append(f"the output does not name {name}")
    elif code != 0:
        problems.append(f"exit {code} without a signal, expected 0")
    planned = PLANNED.search(output)
    junit = project / "unit.xml"
    if planned:
        if not junit.exists():
            problems.append("planned, but no merged JUnit")
        else:
            cases = lo.junit_cases(junit)
            missing = reference - set(cases)
            if missing:
                problems.append(f"{len(missing)} planned tests missing from the merged JUnit, "
                                f"e.g. {sorted(missing)[0]}")
            unexplained = [key for key, results in cases.items() for outcome, message in results
                           if outcome == "error" and not message]
            if unexplained:
                problems.append(f"{len(unexplained)} errors without a cause, e.g. {unexplained[0]}")
    left = runner.leftovers(project, sandbox, launched)
    if left:
        problems.append(f"left behind: {'; '.join(left[:5])}{' ...' if len(left) > 5 else ''}")
        run_id = launched.run_id()
        if run_id:
            lo.kill_leftover_processes(run_id, sandbox)
            if runner.compose:
                lo.remove_compose_resources(run_id)
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["native", "compose"], default="native")
    parser.add_argument("-r", "--repetitions", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: new, printed)")
    parser.add_argument("--max-delay", type=float, default=None,
                        help="draw delays from 0 to this many seconds and skip the reference run (for CI)")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--binary", default=str(REPO / "build" / "testfleet"))
    parser.add_argument("--work", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep every run's folder")
    args = parser.parse_args()
    # Caught here, so that testfleet starts with every stop signal at its default whatever the caller
    # ignored (nohup ignores SIGHUP, and an ignored signal stays ignored across exec).
    for sig in SIGNALS:
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, lambda *_: None)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="signal-storm-", dir=args.work))
    runner = Runner(args, work)
    print(f"signal storm: {args.repetitions} repetitions on the {args.backend} backend, seed {seed}, in {work}",
          flush=True)

    if args.max_delay is not None:
        # The fixture's 24 tests, as a reference run would have reported them.
        reference = {("tests.test_work", f"test_database_and_cache[{n}]") for n in range(24)}
        duration = args.max_delay
        print(f"no reference run: delays up to {duration:.1f}s", flush=True)
    else:
        project, sandbox, launched = runner.start("reference")
        code = launched.wait(timeout=1800)
        duration = time.monotonic() - launched.started
        if code != 0 or not (project / "unit.xml").exists():
            print(f"the reference run failed (exit {code}):\n{launched.output()[-5000:]}")
            return 2
        reference = set(lo.junit_cases(project / "unit.xml"))
        left = runner.leftovers(project, sandbox, launched)
        print(f"reference: exit 0, {len(reference)} tests, {duration:.1f}s, "
              f"{'nothing left' if not left else 'LEFT ' + '; '.join(left)}", flush=True)
        if not args.keep:
            shutil.rmtree(work / "reference", ignore_errors=True)

    failures = 0
    phases = {}
    for rep in range(1, args.repetitions + 1):
        sig = rng.choice(sorted(SIGNALS))
        delay = rng.uniform(0, duration)
        project, sandbox, launched = runner.start(f"rep-{rep:03}")
        sent = False
        output_at_signal = 0
        try:
            deadline = launched.started + delay
            while time.monotonic() < deadline and launched.proc.poll() is None:
                time.sleep(0.01)
            if launched.proc.poll() is None:
                output_at_signal = len(launched.output())
                launched.proc.send_signal(sig)
                sent = True
            launched.wait(timeout=600)
        except AssertionError as error:
            problems = [str(error).splitlines()[0]]
        else:
            problems = judge(runner, reference, project, sandbox, launched, sig, sent, output_at_signal)
        phase = phase_at(launched.output(), output_at_signal) if sent else "after the end"
        phases[phase] = phases.get(phase, 0) + 1
        verdict = "ok" if not problems else "FAILED: " + " | ".join(problems)
        failures += bool(problems)
        print(f"rep {rep:3}: {SIGNALS[sig]:7} after {delay:5.1f}s ({phase}) -> exit {launched.proc.returncode}: "
              f"{verdict}", flush=True)
        if problems:
            # The run's own words: in CI its folder is gone when someone reads this.
            for line in launched.output().splitlines()[-30:]:
                print(f"        | {line}")
        if not problems and not args.keep:
            shutil.rmtree(work / f"rep-{rep:03}", ignore_errors=True)
    print(f"where the signals landed: {json.dumps(phases)}")
    print(f"{args.repetitions} repetitions: {args.repetitions - failures} passed, {failures} failed "
          f"(seed {seed}{'' if failures or args.keep else '; folders removed'})")
    if not failures and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
