#!/usr/bin/python3
"""The workers benchmark (issue 13, workers fed from one queue): testfleet's static split against its dynamic
schedule, where the split by past durations goes wrong.

Three parts, each chosen with --part (repeatable; default: all three, in this order):

  networkx-subset  networkx's tests of networkx.algorithms.flow, .algorithms.shortest_paths, .generators and
                   .algorithms.isomorphism (CPU-bound), 2 workers
  networkx-full    all of networkx's tests (`--pyargs networkx`), 2 workers
  stale            the core benchmark's sleep suite (bench/core_benchmark.py), its .test_durations stale: each
                   test really sleeps its recorded length times a random factor in [0.3, 3] (fixed seed)

The networkx parts time, side by side in one run (the variants interleaved, round after round):

    serial             python3 -m pytest ARGS
    pytest-xdist       python3 -m pytest ARGS -n 2
    testfleet static   testfleet run -n 2 --schedule static --progress plain -- python3 -m pytest ARGS
    testfleet dynamic  testfleet run -n 2 --schedule dynamic --progress plain -- python3 -m pytest ARGS

with ARGS = -p no:cacheprovider --junit-xml=FILE --pyargs MODULES, the same for all, every one of them run
from one temporary directory outside the repository (no .test_durations there: the static split is blind).
networkx is Debian's python3-networkx. A testfleet without `--schedule` (before issue 13) is run once per
round without it, labelled "testfleet (one-shot)", so that the harness runs today. Targets (the dynamic
schedule, or the one-shot run): full suite at least 1.90x serial's speed and at most 0.85x xdist's time;
subset at least 1.70x and at most 0.90x.

Every run's outcome is checked: passed, failed, errors and skipped are counted from its JUnit (pytest's
--junit-xml, testfleet's merged one) and shown side by side; a variant whose counts or test IDs differ
from serial's is flagged, and cannot meet a target (a faster run that ran fewer tests is not a win).
Failing tests are named, skip reasons counted: networkx has tests that need packages Debian only recommends.
A testfleet group that did not end with pytest's own exit status (killed from outside, say) is named too.

The stale part times testfleet static and dynamic (and xdist, for reference) with `--durations
.test_durations`. The true lower bound is max(sum(real) / 2, max(real)), real being what the tests really
sleep. The start-up added to it is that of the measured command itself, `testfleet run -n 2 --schedule
dynamic` (or the one-shot command) on a suite of one test: collection, one pytest process, the merge
(median of 3; a lone pytest's start-up on that suite is printed beside it). Target: dynamic within 1.10 x
lower bound + that start-up; static is shown beside it with no target.

--repeat K runs K rounds and keeps each variant's best time (the fastest run is the one this shared machine
disturbed least); the counts of every round are checked. Each part replaces its own section of
BENCHMARKS.md (`<!-- workers-<part>:start -->` ... `:end -->`) unless --no-write; the section names the
testfleet commit measured (the checkout the binary lives in, and the binary's --version). --trial marks a
section as a trial on a noisy machine. Exit status: 0 every target met, 1 a target missed or a variant ran
other tests, 2 bad usage or a run that failed to run.
"""

import argparse
import ast
import collections
import datetime
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks_md import load_at_start, machine_description, replace_section  # noqa: E402
from core_benchmark import (SEED, BenchmarkError, log_tail, lpt_split, sleep_durations, time_breakdown,  # noqa: E402
                            timed_status, version_of, write_sleep_suite)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("networkx-subset", "networkx-full", "stale")
WORKERS = 2
NETWORKX_MODULES = {
    "networkx-subset": ["networkx.algorithms.flow", "networkx.algorithms.shortest_paths", "networkx.generators",
                        "networkx.algorithms.isomorphism"],
    "networkx-full": ["networkx"],
}
# (least speed-up over serial, most time as a fraction of xdist's), from issue 13.
NETWORKX_TARGETS = {"networkx-subset": (1.70, 0.90), "networkx-full": (1.90, 0.85)}
NETWORKX_TIMEOUTS = {"networkx-subset": 900.0, "networkx-full": 3600.0}
STALE_SEED = 20250113
STALE_FACTORS = (0.3, 3.0)
STALE_RATIO = 1.10
STARTUP_TRIES = 3
SOURCES = ("src", "cmake", "CMakeLists.txt")  # what a binary is built from: a change elsewhere does not matter
PYTEST_EXIT_TESTS_FAILED = 1  # pytest and testfleet alike: the run ran, some tests failed


def pytest_base(python):
    return [python, "-m", "pytest", "-p", "no:cacheprovider"]


# --- testfleet: its schedules, its commit ----------------------------------------------------------------

def has_schedule_flag(binary):
    try:
        completed = subprocess.run([binary, "run", "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BenchmarkError(f"cannot run {binary} run --help: {error}") from error
    return "--schedule" in completed.stdout


def testfleet_variants(binary):
    """[(label, extra testfleet flags)]: static and dynamic, or the one run a testfleet without --schedule makes."""
    if has_schedule_flag(binary):
        return [("testfleet static", ["--schedule", "static"]), ("testfleet dynamic", ["--schedule", "dynamic"])]
    print(f"note: {binary} run --help has no --schedule (issue 13 not in this build): running it once per round "
          "as \"testfleet (one-shot)\"")
    return [("testfleet (one-shot)", [])]


def headline_variant(variants):
    """The variant the targets are about: dynamic, or the one-shot run."""
    return variants[-1][0]


def one_shot_note(variants):
    """A section's words for a testfleet that has no --schedule, given the section's Variants."""
    if sum(variant.testfleet for variant in variants) > 1:
        return []
    return ["- This testfleet has no `--schedule` (issue 13 is not in it): its one schedule, a static split made "
            "before the groups start, is the row \"testfleet (one-shot)\", and the targets are applied to it."]


def reproduce_line(part, options):
    quick = " --quick" if part == "stale" and options.quick else ""
    return ["", f"Reproduce: `bench/workers_benchmark.py --part {part}{quick} --repeat {options.repeat} "
                "--testfleet build/testfleet`."]


def git(checkout, *args):
    completed = subprocess.run(["git", "-C", checkout, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, timeout=60)
    return completed.stdout.strip() if completed.returncode == 0 else None


def testfleet_identity(binary):
    """What a figure was measured on: the binary's --version, the commit of the checkout it lives in, and
    whether the two agree (a binary not rebuilt since the checkout moved measures an older commit)."""
    version = version_of([binary, "--version"])
    top = git(os.path.dirname(os.path.realpath(binary)), "rev-parse", "--show-toplevel")
    if top is None:
        return {"version": version, "commit": "unknown", "text": f"`{version}` (not in a git checkout)"}
    head = git(top, "rev-parse", "--short", "HEAD")
    text = f"`{version}`, from the checkout {top} at commit {head}"
    changed = ""
    if git(top, "status", "--porcelain", "--untracked-files=no", "--", *SOURCES):
        text += " with uncommitted changes to its sources"
        changed = "+changes"
    commit = head + changed
    built = re.search(r"revision ([0-9a-f]{7,40})", version)
    if built and not git(top, "rev-parse", "HEAD").startswith(built.group(1)):
        same = subprocess.run(["git", "-C", top, "diff", "--quiet", built.group(1), "HEAD", "--", *SOURCES],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        text += (f" (the binary was built at {built.group(1)[:7]}: "
                 + ("the same sources" if same else "OTHER SOURCES, rebuild it") + ")")
        commit = built.group(1)[:7] + changed + ("" if same else f" (checkout at {head})")
    return {"version": version, "commit": commit, "text": text}


def bench_commit():
    head = git(REPO, "rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+changes" if git(REPO, "status", "--porcelain", "--", "bench") else "")


# --- outcomes --------------------------------------------------------------------------------------------

class Outcome:
    """A run's tests, from its JUnit: counts, failing and skipped tests, and every test's outcome by its ID."""

    def __init__(self, path):
        self.failing = []  # (kind, test ID, first line of the message)
        self.messages = {}  # test ID: the first line of its failure's, error's or skip's message
        self.skip_reasons = collections.Counter()
        self.results = collections.defaultdict(list)  # test ID: its outcomes (more than one if it is repeated)
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            test_id = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("error") is not None:
                kind = "error"
                self.failing.append((kind, test_id, first_line(case.find("error"))))
            elif case.find("failure") is not None:
                kind = "failed"
                self.failing.append((kind, test_id, first_line(case.find("failure"))))
            elif case.find("skipped") is not None:
                kind = "skipped"
                self.skip_reasons[skip_reason(case.find("skipped"))] += 1
            else:
                kind = "passed"
            self.results[test_id].append(kind)
            if kind != "passed":
                self.messages.setdefault(test_id, first_line(case.find("skipped" if kind == "skipped" else
                                                                       "failure" if kind == "failed" else kind)))
        kinds = collections.Counter(kind for outcomes in self.results.values() for kind in outcomes)
        self.passed, self.failed, self.errors, self.skipped = (kinds[k] for k in ("passed", "failed", "error",
                                                                                   "skipped"))

    @property
    def counts(self):
        return (self.passed, self.failed, self.errors, self.skipped)

    @property
    def total(self):
        return sum(self.counts)

    def text(self):
        return f"{self.passed:,} / {self.failed:,} / {self.errors:,} / {self.skipped:,}"

    def differences(self, reference):
        """How this run's tests differ from `reference`'s, in words; empty when they agree."""
        found = []
        if self.counts != reference.counts:
            found.append(f"counts {self.text()} against {reference.text()} (passed / failed / errors / skipped)")
        missing = [test for test in reference.results if test not in self.results]
        extra = [test for test in self.results if test not in reference.results]
        repeated = [test for test in self.results
                    if test in reference.results and len(self.results[test]) > len(reference.results[test])]
        changed = [test for test in self.results
                   if test in reference.results and set(self.results[test]) != set(reference.results[test])]
        for what, tests in (("missing", missing), ("not in the reference", extra),
                            ("reported more often than in the reference", repeated),
                            ("with another outcome than in the reference", changed)):
            if tests:
                example = tests[0]
                shown = example
                if example in self.results and example in reference.results:
                    said = self.messages.get(example)
                    shown += (f" ({'/'.join(self.results[example])} against {'/'.join(reference.results[example])}"
                              + (f": {said}" if said and what.startswith("with another") else "") + ")")
                found.append(f"{len(tests)} test(s) {what}, e.g. {shown}")
        return found


def first_line(element):
    text = (element.get("message") or element.text or "").strip()
    return text.splitlines()[0][:160] if text else ""


def skip_reason(element):
    """The reason alone, so that one reason counts once: pytest writes "path:line: reason" for a skipped
    test, and for a module skipped while collecting, "collection skipped" with a (path, line, reason) tuple."""
    message = (element.get("message") or "").strip()
    if message == "collection skipped":
        try:
            reason = str(ast.literal_eval((element.text or "").strip())[2])
        except (ValueError, SyntaxError, IndexError, TypeError):
            reason = (element.text or "").strip()
        return "whole module, at collection: " + reason.removeprefix("Skipped: ")[:120]
    return re.sub(r"^\S+:\d+: ", "", message)[:120] or "(no reason given)"


class Variant:
    """One contender: its command (given a JUnit path and a reports directory) and every round's run."""

    def __init__(self, label, build_command, testfleet=False):
        self.label = label
        self.build_command = build_command
        self.testfleet = testfleet
        self.runs = []  # dicts: wall, returncode, outcome (or None), log, reports
        self.problems = []  # (round, what went wrong running it or how its tests differ from the reference)

    def run(self, cwd, outdir, round_index, timeout):
        slug = re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-")
        junit = os.path.join(outdir, "junit", f"{slug}-{round_index}.xml")
        reports = os.path.join(outdir, "reports", f"{slug}-{round_index}")
        log = os.path.join(outdir, "logs", f"{slug}-{round_index}.log")
        command = self.build_command(junit, reports)
        if round_index == 1:
            print(f"  {self.label}: {' '.join(command)}", flush=True)
        wall, returncode = timed_status(command, cwd, log, timeout)
        outcome = None
        if returncode in (0, PYTEST_EXIT_TESTS_FAILED):
            try:
                outcome = Outcome(junit)
            except (OSError, ElementTree.ParseError) as error:
                self.problems.append((round_index, f"no readable JUnit at {junit} ({error})"))
        else:
            self.problems.append((round_index, f"exited with {returncode} (log {log}):\n{log_tail(log)}"))
        if self.testfleet:
            for problem in group_problems(reports):
                self.problems.append((round_index, problem))
        self.runs.append({"wall": wall, "returncode": returncode, "outcome": outcome, "log": log,
                          "reports": reports})
        shown = outcome.text() if outcome else "no outcome"
        print(f"  round {round_index} {self.label}: {wall:.2f} s, exit {returncode}, {shown}", flush=True)

    @property
    def failed_to_run(self):
        return any(r["outcome"] is None for r in self.runs)

    @property
    def best(self):
        return min(self.runs, key=lambda r: r["wall"])

    @property
    def wall(self):
        return self.best["wall"]

    @property
    def outcome(self):
        return self.best["outcome"]

    def check_against(self, reference):
        """Flags every round whose tests differ from the reference's (serial's best run, or a generated suite)."""
        for index, run in enumerate(self.runs, 1):
            if run["outcome"] is None or reference is None:
                continue
            for difference in run["outcome"].differences(reference):
                self.problems.append((index, difference))

    def problem_summaries(self):
        """Each problem once, with the rounds it happened in: "rounds 1, 2: ..."."""
        rounds = collections.defaultdict(list)
        for index, problem in self.problems:
            rounds[problem].append(str(index))
        return [f"round{'s' if len(r) > 1 else ''} {', '.join(r)}: {problem}" for problem, r in rounds.items()]

    @property
    def comparable(self):
        return not self.problems


def group_problems(reports):
    """The groups of a testfleet run that did not end by themselves with pytest's exit 0 or 1 ("group 1 killed
    by SIGKILL"): a group killed from outside loses its tests, and this says why they are missing."""
    try:
        with open(os.path.join(reports, "run.json"), encoding="utf-8") as run_file:
            groups = json.load(run_file)["groups"]
        return [f"group {group['group']} {group['status']}" + (" (timed out)" if group.get("timed_out") else "")
                for group in groups if group.get("status") not in ("exit 0", "exit 1")]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"no readable run.json in {reports} ({error})"]


def testfleet_times(variant):
    """(outside, ends apart) of a testfleet variant's best run, from its run.json: the seconds of its wall time
    outside its groups (collection, planning, merging), and how far apart its first and last group ended (what
    a split that guessed wrong costs). (None, None) for pytest's own variants or a run.json that does not say."""
    if not variant.testfleet or not variant.runs:
        return None, None
    breakdown = time_breakdown(variant.best["reports"])
    try:
        with open(os.path.join(variant.best["reports"], "run.json"), encoding="utf-8") as run_file:
            ends = [float(group["ended"]) for group in json.load(run_file)["groups"]]
        apart = max(ends) - min(ends)
    except (OSError, ValueError, KeyError, TypeError):
        apart = None
    return (breakdown["outside"] if breakdown else None), apart


def run_rounds(variants, cwd, outdir, repeat, timeout):
    """Every variant once per round, in `cwd`; their JUnit, reports and logs under `outdir`."""
    for name in ("junit", "reports", "logs"):
        os.makedirs(os.path.join(outdir, name), exist_ok=True)
    for round_index in range(1, repeat + 1):
        print(f"round {round_index} of {repeat}", flush=True)
        for variant in variants:
            variant.run(cwd, outdir, round_index, timeout)


# --- the networkx parts ----------------------------------------------------------------------------------

def networkx_part(part, options, identity, workdir):
    modules = NETWORKX_MODULES[part]
    least_speedup, most_of_xdist = NETWORKX_TARGETS[part]
    timeout = options.timeout or NETWORKX_TIMEOUTS[part]

    def pytest_args(junit):
        return ["-p", "no:cacheprovider", f"--junit-xml={junit}", "--pyargs", *modules]

    def testfleet_command(flags):
        return lambda junit, reports: [options.testfleet, "run", "-n", str(WORKERS), *flags, "--progress", "plain",
                                       "--reports-dir", reports, "--", options.python, "-m", "pytest",
                                       *pytest_args(junit)]

    testfleet = testfleet_variants(options.testfleet)
    variants = [
        Variant("serial pytest", lambda junit, reports: [options.python, "-m", "pytest", *pytest_args(junit)]),
        Variant(f"pytest-xdist -n {WORKERS}",
                lambda junit, reports: [options.python, "-m", "pytest", *pytest_args(junit), "-n", str(WORKERS)]),
        *[Variant(label, testfleet_command(flags), testfleet=True) for label, flags in testfleet],
    ]
    machine = machine_description() + load_at_start()
    print(f"{part}: {', '.join(modules)}, {WORKERS} workers, {options.repeat} round(s), in {workdir}", flush=True)
    run_rounds(variants, workdir, workdir, options.repeat, timeout)
    load_end = " ".join(f"{value:.2f}" for value in os.getloadavg())

    serial, xdist = variants[0], variants[1]
    reference = serial.outcome if not serial.failed_to_run else None
    for variant in variants[1:]:
        variant.check_against(reference)
    serial.check_against(reference)  # serial's own rounds agree with its best one
    headline = headline_variant(testfleet)
    rows = []
    for variant in variants:
        row = {"variant": variant, "speedup": None, "of_xdist": None, "target": "", "verdict": ""}
        row["outside"], row["apart"] = testfleet_times(variant)
        if not serial.failed_to_run and variant.runs:
            row["speedup"] = serial.wall / variant.wall
        if not xdist.failed_to_run:
            row["of_xdist"] = variant.wall / xdist.wall
        if variant.testfleet:
            row["target"] = f">= {least_speedup:.2f}x serial, <= {most_of_xdist:.2f}x xdist"
            if variant.failed_to_run or serial.failed_to_run or xdist.failed_to_run:
                row["verdict"] = "not measured"
            else:
                on_time = row["speedup"] >= least_speedup and row["of_xdist"] <= most_of_xdist
                row["verdict"] = ("met" if on_time else "MISSED") if variant.comparable else (
                    f"MISSED (tests differ from serial; on time alone {'met' if on_time else 'missed'})")
        elif variant is serial:
            row["target"] = "the reference"
        else:
            row["target"] = "the reference" if variant.comparable else "the reference (tests differ from serial)"
        rows.append(row)

    print_table(rows, ["speed-up", "of xdist", "outside", "ends apart"],
                lambda row: [ratio(row["speedup"]), ratio(row["of_xdist"]), seconds_or_dash(row["outside"]),
                             seconds_or_dash(row["apart"])])
    report_problems(variants)
    report_tests(serial)
    headline_row = next(row for row in rows if row["variant"].label == headline)
    failed_to_run = any(v.failed_to_run for v in variants)
    met = headline_row["verdict"] == "met"
    print(f"{part}: {headline} {headline_row['verdict'] or 'not measured'} "
          f"(target {headline_row['target']})", flush=True)

    if not options.no_write:
        section = networkx_section(part, options, identity, machine, load_end, modules, rows, variants, headline,
                                   headline_row)
        replace_section(options.benchmarks_file, f"workers-{part}", section)
        print(f"updated {options.benchmarks_file} (section workers-{part})")
    return 2 if failed_to_run else (0 if met else 1)


def networkx_section(part, options, identity, machine, load_end, modules, rows, variants, headline, headline_row):
    serial = variants[0]
    least_speedup, most_of_xdist = NETWORKX_TARGETS[part]
    count = f"{serial.outcome.total:,} tests in serial's JUnit" if serial.outcome else "tests"
    title = "the networkx suite" if part == "networkx-full" else "a subset of the networkx suite"
    table = ["| variant | wall time | speed-up over serial | time / xdist's | outside the groups | groups' ends apart "
             "| tests: passed / failed / errors / skipped | target | | testfleet at |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        variant = row["variant"]
        tests = variant.outcome.text() if variant.outcome else "no JUnit"
        if variant.outcome and not variant.comparable and variant is not serial:
            tests += " **(differ from serial)**"
        table.append(f"| {variant.label} | {variant.wall:.2f} s | {ratio(row['speedup'])} | {ratio(row['of_xdist'])} "
                     f"| {seconds_or_dash(row['outside'])} | {seconds_or_dash(row['apart'])} | {tests} "
                     f"| {row['target']} | {row['verdict']} | {identity['commit'] if variant.testfleet else '-'} |")
    lines = [
        f"## Workers benchmark: {title} ({count}), {WORKERS} workers",
        "",
        *trial_note(options),
        f"Measured {now()} by `bench/workers_benchmark.py --part {part}` (at commit {bench_commit()}): the "
        f"{len(variants)} variants side by side in one run, interleaved, best of {options.repeat} "
        f"round{'s' if options.repeat > 1 else ''}.",
        "",
        f"- Machine: {machine}; {load_end} at the end.",
        f"- Software: {software(options)}, networkx {networkx_version(options.python)} (Debian's python3-networkx, "
        "without the packages it only recommends: the tests that need them skip).",
        f"- testfleet: {identity['text']}.",
        f"- Every variant from one temporary directory outside the repository, with the same pytest arguments "
        f"`-p no:cacheprovider --junit-xml=FILE --pyargs {' '.join(modules)}`; xdist adds `-n {WORKERS}`; "
        f"testfleet runs `testfleet run -n {WORKERS} [--schedule static|dynamic] --progress plain -- "
        "/usr/bin/python3 -m pytest ...` (no .test_durations in that directory: a static split weighs every test "
        "the same). "
        "Tests are counted from each run's JUnit (testfleet's merged one).",
        *one_shot_note(variants),
        "",
        *table,
        "",
        f"Result: {headline} at {ratio(headline_row['speedup'])} serial's speed and {ratio(headline_row['of_xdist'])} "
        f"xdist's time; target (at least {least_speedup:.2f}x, at most {most_of_xdist:.2f}x) "
        f"{headline_row['verdict'] or 'not measured'}.",
        *problem_lines(variants),
        *test_lines(serial),
        *reproduce_line(part, options),
    ]
    return "\n".join(lines)


# --- the stale-durations part ----------------------------------------------------------------------------

def stale_suite(quick):
    """(recorded, real): the core benchmark's durations (400 tests, 60 s; 100 tests, 12 s with --quick) and
    what each test really sleeps: its recorded length times uniform(0.3, 3), seeded."""
    count, total = (100, 12.0) if quick else (400, 60.0)
    recorded = sleep_durations(count, total, SEED)
    rng = random.Random(STALE_SEED)
    real = [max(0.001, round(seconds * rng.uniform(*STALE_FACTORS), 3)) for seconds in recorded]
    return recorded, real


def stale_part(options, identity, workdir):
    recorded, real = stale_suite(options.quick)
    suite_dir = os.path.join(workdir, "suite")
    durations = write_sleep_suite(suite_dir, real, recorded)
    real_by_id = dict(zip(durations, real))
    lower_bound = max(sum(real) / WORKERS, max(real))
    timeout = options.timeout or max(120.0, 3 * sum(real))
    # The static split testfleet's LPT makes from the stale durations, and what its largest group really sleeps.
    static_floor = max(sum(real_by_id[test] for test in group) for group in lpt_split(durations, WORKERS))
    print(f"stale: {len(real)} tests in {suite_dir}; recorded total {sum(recorded):.2f} s, real total "
          f"{sum(real):.2f} s, longest real {max(real):.3f} s; lower bound {lower_bound:.2f} s; an LPT split on the "
          f"recorded durations really sleeps {static_floor:.2f} s in its largest group", flush=True)

    testfleet = testfleet_variants(options.testfleet)
    headline = headline_variant(testfleet)
    headline_flags = testfleet[-1][1]

    def testfleet_command(flags):
        return lambda junit, reports: [options.testfleet, "run", "-n", str(WORKERS), *flags, "--progress", "plain",
                                       "--durations", ".test_durations", "--reports-dir", reports, "--",
                                       *pytest_base(options.python), f"--junit-xml={junit}"]

    machine = machine_description() + load_at_start()
    startup, lone_pytest = stale_startups(options, workdir, headline_flags, timeout)
    target = STALE_RATIO * lower_bound + startup
    print(f"start-up: {startup:.2f} s for `testfleet run` on one test ({lone_pytest:.2f} s for a lone pytest on "
          f"it); target for {headline}: {STALE_RATIO:.2f} x {lower_bound:.2f} s + {startup:.2f} s = {target:.2f} s",
          flush=True)

    variants = [Variant(label, testfleet_command(flags), testfleet=True) for label, flags in testfleet]
    variants.append(Variant(f"pytest-xdist -n {WORKERS}", lambda junit, reports: [
        *pytest_base(options.python), f"--junit-xml={junit}", "-n", str(WORKERS)]))
    run_rounds(variants, suite_dir, workdir, options.repeat, timeout)
    load_end = " ".join(f"{value:.2f}" for value in os.getloadavg())

    rows = []
    for variant in variants:
        for index, run in enumerate(variant.runs, 1):
            if run["outcome"] is not None and run["outcome"].counts != (len(real), 0, 0, 0):
                variant.problems.append((index, f"{run['outcome'].text()} (passed / failed / errors / skipped), "
                                                f"not all {len(real)} passed"))
        row = {"variant": variant, "of_bound": variant.wall / lower_bound, "target": "", "verdict": ""}
        if variant.label == headline:
            row["target"] = f"<= {target:.2f} s ({STALE_RATIO:.2f} x lower bound + start-up)"
            if variant.failed_to_run:
                row["verdict"] = "not measured"
            elif not variant.comparable:
                row["verdict"] = "MISSED (tests differ)"
            else:
                row["verdict"] = "met" if variant.wall <= target else "MISSED"
        else:
            row["target"] = "none (shown beside)"
        row["outside"], row["apart"] = testfleet_times(variant)
        rows.append(row)

    print_table(rows, ["/ bound", "outside", "ends apart"],
                lambda row: [f"{row['of_bound']:.3f}x", seconds_or_dash(row["outside"]), seconds_or_dash(row["apart"])])
    report_problems(variants)
    headline_row = next(row for row in rows if row["variant"].label == headline)
    print(f"stale: {headline} {headline_row['verdict']} ({headline_row['variant'].wall:.2f} s, target "
          f"{target:.2f} s = {STALE_RATIO:.2f} x lower bound {lower_bound:.2f} s + start-up {startup:.2f} s)")
    failed_to_run = any(v.failed_to_run for v in variants)

    if not options.no_write:
        facts = {"recorded": recorded, "real": real, "lower_bound": lower_bound, "static_floor": static_floor,
                 "startup": startup, "lone_pytest": lone_pytest, "target": target, "machine": machine,
                 "load_end": load_end}
        section = stale_section(options, identity, facts, rows, variants, headline, headline_row)
        replace_section(options.benchmarks_file, "workers-stale", section)
        print(f"updated {options.benchmarks_file} (section workers-stale)")
    return 2 if failed_to_run else (0 if headline_row["verdict"] == "met" else 1)


def stale_startups(options, workdir, flags, timeout):
    """(testfleet, lone pytest): the median wall time of each on a suite of one test that sleeps 1 ms."""
    one_dir = os.path.join(workdir, "one-test")
    write_sleep_suite(one_dir, [0.001], [0.001])
    os.makedirs(os.path.join(workdir, "logs"), exist_ok=True)
    commands = {
        "testfleet": [options.testfleet, "run", "-n", str(WORKERS), *flags, "--progress", "plain", "--durations",
                      ".test_durations", "--reports-dir", os.path.join(workdir, "one-test-reports"), "--",
                      *pytest_base(options.python)],
        "pytest": pytest_base(options.python),
    }
    medians = []
    for name, command in commands.items():
        walls = []
        for attempt in range(1, STARTUP_TRIES + 1):
            log = os.path.join(workdir, "logs", f"startup-{name}-{attempt}.log")
            wall, returncode = timed_status(command, one_dir, log, timeout)
            if returncode != 0:
                raise BenchmarkError(f"{' '.join(command)} exited with {returncode} on the one-test suite:\n"
                                     f"{log_tail(log)}")
            walls.append(wall)
        medians.append(statistics.median(walls))
    return medians[0], medians[1]


def stale_section(options, identity, facts, rows, variants, headline, headline_row):
    f = facts
    table = ["| variant | wall time | wall / lower bound | outside the groups | groups' ends apart | tests | target | "
             "| testfleet at |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        variant = row["variant"]
        tests = "all passed" if variant.comparable and variant.outcome else (
            variant.outcome.text() + " **(not all passed)**" if variant.outcome else "no JUnit")
        table.append(f"| {variant.label} | {variant.wall:.2f} s | {row['of_bound']:.3f}x | "
                     f"{seconds_or_dash(row['outside'])} | {seconds_or_dash(row['apart'])} | {tests} "
                     f"| {row['target']} | {row['verdict']} | {identity['commit'] if variant.testfleet else '-'} |")
    lines = [
        f"## Workers benchmark: {len(f['real'])} sleeping tests with stale durations, {WORKERS} workers",
        "",
        *trial_note(options),
        f"Measured {now()} by `bench/workers_benchmark.py --part stale{' --quick' if options.quick else ''}` (at "
        f"commit {bench_commit()}): the variants side by side in one run, interleaved, best of {options.repeat} "
        f"round{'s' if options.repeat > 1 else ''}.",
        "",
        f"- Machine: {f['machine']}; {f['load_end']} at the end.",
        f"- Software: {software(options)}.",
        f"- testfleet: {identity['text']}.",
        f"- Suite: the core benchmark's sleep suite (seed {SEED}), `.test_durations` recording "
        f"{sum(f['recorded']):.2f} s in all; each test really sleeps its recorded length times "
        f"uniform({STALE_FACTORS[0]}, {STALE_FACTORS[1]}) (seed {STALE_SEED}): {sum(f['real']):.2f} s in all, "
        f"the longest {max(f['real']):.3f} s. "
        "testfleet runs with `--durations .test_durations`.",
        f"- True lower bound max(real total / {WORKERS}, longest real) = {f['lower_bound']:.2f} s. Start-up = "
        f"`testfleet run -n {WORKERS}` as measured, on a suite of one test (collection, one pytest, the merge; "
        f"median of {STARTUP_TRIES}) = {f['startup']:.2f} s (a lone pytest on it: {f['lone_pytest']:.2f} s). Target "
        f"for {headline}: {STALE_RATIO:.2f} x {f['lower_bound']:.2f} s + {f['startup']:.2f} s = {f['target']:.2f} s.",
        f"- The LPT split of the recorded durations really puts {f['static_floor']:.2f} s "
        f"({f['static_floor'] / f['lower_bound']:.3f}x the lower bound) in its largest group: the floor of a "
        "static split on these durations.",
        *one_shot_note(variants),
        "",
        *table,
        "",
        f"Result: {headline} {headline_row['variant'].wall:.2f} s, {headline_row['of_bound']:.3f}x the lower bound, "
        f"against a target of {f['target']:.2f} s: {headline_row['verdict']}.",
        *problem_lines(variants),
        *reproduce_line("stale", options),
    ]
    return "\n".join(lines)


# --- shared output ---------------------------------------------------------------------------------------

def ratio(value):
    return f"{value:.2f}x" if value is not None else "-"


def seconds_or_dash(value):
    return f"{value:.2f} s" if value is not None else "-"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def trial_note(options):
    if not options.trial:
        return []
    return ["**Trial run on a noisy, shared machine (see the load averages): these are not final figures.**", ""]


def software(options):
    python = (f"Python {platform.python_version()}" if os.path.realpath(options.python) == os.path.realpath(
        sys.executable) else version_of([options.python, "--version"]))
    return (f"{python}, {version_of([options.python, '-m', 'pytest', '--version'])}, pytest-xdist "
            f"{version_of([options.python, '-c', 'import xdist; print(xdist.__version__)'])}")


def networkx_version(python):
    return version_of([python, "-c", "import networkx; print(networkx.__version__)"])


def print_table(rows, extra_headers, extra_cells):
    print()
    print(f"{'variant':<21} {'wall':>8} " + " ".join(f"{header:>10}" for header in extra_headers)
          + f" {'passed/failed/errors/skipped':>29}  {'target':<43} verdict")
    for row in rows:
        variant = row["variant"]
        tests = variant.outcome.text() if variant.outcome else "no JUnit"
        flag = "" if variant.comparable else "  << FLAGGED"
        print(f"{variant.label:<21} {variant.wall:>7.2f}s " + " ".join(f"{cell:>10}" for cell in extra_cells(row))
              + f" {tests:>29}  {row['target']:<43} {row['verdict']}{flag}")
    print()


def report_problems(variants):
    for variant in variants:
        for problem in variant.problem_summaries():
            print(f"FLAGGED {variant.label}: {problem}")


def problem_lines(variants):
    lines = [f"- **{variant.label}**: {problem.splitlines()[0]}" for variant in variants
             for problem in variant.problem_summaries()]
    if not lines:
        return []
    return ["", "Flagged (a run whose tests differ from the reference's, or that did not run):", *lines]


def report_tests(serial):
    outcome = serial.outcome
    if outcome is None:
        return
    for kind, test_id, message in outcome.failing:
        print(f"serial {kind}: {test_id}: {message}")
    for reason, count in outcome.skip_reasons.most_common():
        print(f"serial skipped {count}: {reason}")


def test_lines(serial, shown=10):
    outcome = serial.outcome
    if outcome is None:
        return []
    lines = [""]
    if outcome.failing:
        lines.append(f"Serial pytest's failures and errors ({len(outcome.failing)}; every variant's are in its "
                     "JUnit):")
        lines += [f"- {kind}: `{test_id}`: {message}" for kind, test_id, message in outcome.failing[:shown]]
        if len(outcome.failing) > shown:
            lines.append(f"- and {len(outcome.failing) - shown} more")
    else:
        lines.append("Serial pytest: no test failed.")
    if outcome.skip_reasons:
        reasons = "; ".join(f"{count} {reason}" for reason, count in outcome.skip_reasons.most_common(shown))
        lines.append(f"Skipped in serial pytest ({outcome.skipped}), by reason: {reasons}"
                     + ("; and others." if len(outcome.skip_reasons) > shown else "."))
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=PARTS,
                        help="a part to run (repeatable; default: all three)")
    parser.add_argument("--testfleet", default=os.path.join(REPO, "build", "testfleet"),
                        help="the testfleet binary (default: build/testfleet in this repository)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every variant; each variant's best time counts (default 1)")
    parser.add_argument("--python", default="/usr/bin/python3", help="interpreter with pytest, xdist and networkx")
    parser.add_argument("--quick", action="store_true",
                        help="stale part: 100 tests recording 12 s (not 400 recording 60 s)")
    parser.add_argument("--timeout", type=float, help="seconds one run may take (default: per part)")
    parser.add_argument("--trial", action="store_true",
                        help="mark the sections written as a trial on a noisy machine, not final figures")
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    parser.add_argument("--benchmarks-file", default=os.path.join(REPO, "BENCHMARKS.md"),
                        help="the Markdown file whose sections to update (default: BENCHMARKS.md at the root)")
    parser.add_argument("--keep", metavar="DIR",
                        help="run in DIR (outside the repository) and keep it: suites, JUnit, logs, reports")
    options = parser.parse_args()
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not os.access(options.testfleet, os.X_OK):
        parser.error(f"no executable testfleet at {options.testfleet} (build it with scripts/build, or --testfleet)")
    options.testfleet = os.path.abspath(options.testfleet)
    if options.keep:
        options.keep = os.path.abspath(options.keep)
        if (options.keep + os.sep).startswith(REPO + os.sep):
            parser.error(f"--keep {options.keep} is inside the repository: pytest would find its configuration")
    parts = [part for part in PARTS if part in (options.part or PARTS)]
    identity = testfleet_identity(options.testfleet)
    print(f"testfleet: {identity['text']}")
    worst = 0
    for part in parts:
        workdir = os.path.join(options.keep, part) if options.keep else tempfile.mkdtemp(
            prefix=f"testfleet-workers-{part}-")
        os.makedirs(workdir, exist_ok=True)
        started = time.monotonic()
        try:
            status = stale_part(options, identity, workdir) if part == "stale" else networkx_part(
                part, options, identity, workdir)
        except BenchmarkError as error:
            print(f"workers_benchmark.py: {part}: {error}", file=sys.stderr)
            status = 2
        finally:
            if not options.keep:
                shutil.rmtree(workdir, ignore_errors=True)
        print(f"{part}: {time.monotonic() - started:.0f} s in all", flush=True)
        worst = max(worst, status)
    return worst


if __name__ == "__main__":
    sys.exit(main())
