#!/usr/bin/python3
"""The start-up benchmark: what testfleet itself costs before any test runs.

Measured with hyperfine (Debian's), one after the other on this machine:

    testfleet --version                      the floor: process start, argument parsing, exit
    testfleet plan on 5,000 tests            a large real suite: collect, look up durations, split, print
    testfleet plan on 1,000,000 tests        far beyond any real suite: where the linear costs show

`plan` runs the user's collection command; here it is the generic runner's `--list-command 'cat ids.txt'`
over a file of pytest-style IDs (20 per class, 50 per module, modules in sorted path order and tests in
definition order, as pytest collects them; fixed seed), so the collection itself costs what `cat` costs,
and `cat` alone is timed beside it to show testfleet's own share. Each size is planned twice: with no
durations (every test estimated), and with a pytest-split `.test_durations` that knows 90% of the tests.

Targets: `--version` under 5 ms, planning 5,000 tests under 50 ms and 1,000,000 tests under 1 s, judged
on the median wall time. The machine's load average is printed and recorded with the figures: on a shared
machine the wall time includes waiting for a core, and the CPU time (user + system) shows testfleet's work.

A full run (not --quick) replaces its own section of BENCHMARKS.md, between
`<!-- startup-benchmark:start -->` and `<!-- startup-benchmark:end -->`. Exit status: 0 every target met,
1 a target missed, 2 bad usage or a command that failed.

    bench/startup_benchmark.py                          build-static/testfleet (scripts/package builds it)
    bench/startup_benchmark.py --binary build/testfleet --compare build-static/testfleet
    bench/startup_benchmark.py --quick                  fewer runs, 5,000 tests only, BENCHMARKS.md untouched
"""

import argparse
import datetime
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile

from benchmarks_md import machine_description, replace_section

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 20241126
GROUPS = 8
TARGETS_MS = {"version": 5.0, 5000: 50.0, 1000000: 1000.0}
WORDS = ["create", "delete", "update", "list", "retrieve", "permission", "cache", "serializer", "validation",
         "filter", "order", "pagination", "login", "logout", "token", "signal", "migration", "query", "count",
         "export"]


class BenchmarkError(Exception):
    pass


def pytest_ids(count, seed):
    """`count` unique pytest node IDs in collection order: sorted modules, tests in definition order."""
    rng = random.Random(seed)
    modules = sorted(f"tests/app{m // 400:03d}/test_{rng.choice(WORDS)}_{m:05d}.py" for m in range(count // 50))
    ids = []
    for module in modules:
        for c in range(5):
            cls = f"Test{rng.choice(WORDS).capitalize()}{c}"
            for k in range(10):
                name = f"test_{rng.choice(WORDS)}_{rng.choice(WORDS)}_{k}"
                if k % 3 == 0:
                    name += f"[case-{rng.randrange(1000)}]"
                ids.append(f"{module}::{cls}::{name}")
    return ids[:count]


def write_suite(directory, count, seed):
    """ids-N.txt and durations-N.json (pytest-split format, 90% of the tests known) in `directory`."""
    ids = pytest_ids(count, seed)
    ids_file = os.path.join(directory, f"ids-{count}.txt")
    with open(ids_file, "w", encoding="utf-8") as out:
        out.write("\n".join(ids) + "\n")
    rng = random.Random(seed + 1)
    known = {test: round(rng.lognormvariate(-2.0, 1.0), 3) for test in ids if rng.random() < 0.9}
    durations_file = os.path.join(directory, f"durations-{count}.json")
    with open(durations_file, "w", encoding="utf-8") as out:
        json.dump(dict(sorted(known.items())), out, indent=4)
    return ids_file, durations_file


def hyperfine(commands, runs, warmup, cwd, output="null"):
    """Runs hyperfine on `commands` (name -> argv) without a shell; returns name -> its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as export:
        argv = ["hyperfine", "--shell=none", "--style=basic", "--runs", str(runs), "--warmup", str(warmup),
                f"--output={output}", "--export-json", export.name]
        names = list(commands)
        for name in names:
            argv += ["--command-name", name, shlex.join(commands[name])]
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BenchmarkError(f"hyperfine failed ({result.returncode}):\n{result.stderr.strip()}")
        with open(export.name, encoding="utf-8") as data:
            results = json.load(data)["results"]
    return dict(zip(names, results))


def check_runs(binary, argv, cwd):
    """Each command once, outside hyperfine, so that a failing one is named with its error."""
    result = subprocess.run([binary] + argv, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchmarkError(f"{binary} {shlex.join(argv)} failed ({result.returncode}):\n{result.stderr.strip()}")
    return result


def measure(binary, sizes, quick, workdir):
    measured = {"binary": binary, "rows": []}
    check_runs(binary, ["--version"], workdir)
    version = hyperfine({"testfleet --version": [binary, "--version"]}, runs=50 if quick else 300,
                        warmup=10 if quick else 30, cwd=workdir)
    measured["rows"].append(("`testfleet --version`", version["testfleet --version"], TARGETS_MS["version"]))
    for count in sizes:
        ids_file, durations_file = write_suite(workdir, count, SEED)
        listing = ["--list-command", f"cat {os.path.basename(ids_file)}"]
        test_command = ["--", "run", "{tests_file}", "{junit}"]
        plan = [binary, "plan", "-n", str(GROUPS)] + listing + test_command
        plan_known = [binary, "plan", "-n", str(GROUPS), "--durations", os.path.basename(durations_file)] + listing \
            + test_command
        check_runs(binary, plan[1:], workdir)
        check_runs(binary, plan_known[1:], workdir)
        small = count <= 10000
        runs = (20 if quick else 50) if small else 5
        results = hyperfine({"plan": plan, "plan known": plan_known}, runs=runs, warmup=3 if small else 1,
                            cwd=workdir)
        # Into a pipe, as testfleet reads it (to /dev/null, cat would not even copy the data).
        results.update(hyperfine({"cat": ["cat", os.path.basename(ids_file)]}, runs=runs, warmup=3 if small else 1,
                                 cwd=workdir, output="pipe"))
        measured["rows"].append((f"`cat` of {count:,} IDs into a pipe (the collection command alone)",
                                 results["cat"], None))
        measured["rows"].append((f"`testfleet plan` of {count:,} tests, no durations", results["plan"],
                                 TARGETS_MS[count]))
        measured["rows"].append((f"`testfleet plan` of {count:,} tests, 90% with durations", results["plan known"],
                                 TARGETS_MS[count]))
    return measured


def stripped_size(binary):
    with tempfile.TemporaryDirectory() as scratch:
        copy = os.path.join(scratch, "testfleet")
        subprocess.run(["strip", "-o", copy, binary], check=True, capture_output=True)
        return os.path.getsize(copy)


def linkage(binary):
    headers = subprocess.run(["readelf", "--program-headers", binary], capture_output=True, text=True).stdout
    return "dynamic" if "INTERP" in headers else "static"


def ms(seconds):
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(measured):
    lines = ["| command | median | mean ± σ | min | CPU (user + sys) | target | |", "|---|---|---|---|---|---|---|"]
    verdicts = []
    for name, result, target in measured["rows"]:
        median = result["median"]
        cpu = result["user"] + result["system"]
        if target is None:
            verdict, shown_target = "", ""
        else:
            met = median * 1000 < target
            verdicts.append(met)
            verdict, shown_target = ("met" if met else "MISSED"), f"< {target:g} ms"
        lines.append(f"| {name} | {ms(median)} | {ms(result['mean'])} ± {ms(result['stddev'] or 0)} | "
                     f"{ms(result['min'])} | {ms(cpu)} | {shown_target} | {verdict} |")
    return lines, verdicts


def format_section(runs, load, when):
    out = ["## Start-up benchmark: `--version`, and `plan` on 5,000 and 1,000,000 tests", ""]
    out.append(f"Measured {when} by `bench/startup_benchmark.py` with hyperfine (seed {SEED}), `plan -n {GROUPS}` "
               "with the generic runner listing the tests with `cat` (IDs as pytest collects them).")
    out.append("")
    out.append(f"- Machine: {machine_description()}, load average {load} at start (the wall time includes waiting for a "
               "core; CPU time is testfleet's own work).")
    for measured in runs:
        out.append(f"- {measured['label']}: {measured['version']}, "
                   f"{measured['linkage']}ally linked, {measured['size']:,} bytes stripped.")
    all_verdicts = []
    for measured in runs:
        out += ["", f"### {measured['label']} ({measured['linkage']})", ""]
        lines, verdicts = table(measured)
        out += lines
        all_verdicts += verdicts
    out.append("")
    missed = all_verdicts.count(False)
    out.append(f"Result: {len(all_verdicts) - missed} of {len(all_verdicts)} targets met on the median wall time"
               + ("." if not missed else f"; {missed} MISSED (see the rows marked MISSED)."))
    return "\n".join(out) + "\n", missed == 0


def default_binary():
    for candidate in ("build-static/testfleet", "build/testfleet"):
        path = os.path.join(REPO, candidate)
        if os.access(path, os.X_OK):
            return path
    return os.path.join(REPO, "build-static", "testfleet")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=default_binary(), help="testfleet to measure (default: the static build)")
    parser.add_argument("--label", help="what the binary is, in the section (default: its path)")
    parser.add_argument("--compare", action="append", default=[], help="another testfleet measured the same way")
    parser.add_argument("--compare-label", action="append", default=[], help="what each --compare binary is")
    parser.add_argument("--quick", action="store_true", help="fewer runs, 5,000 tests only; BENCHMARKS.md untouched")
    parser.add_argument("--output", default=os.path.join(REPO, "BENCHMARKS.md"), help="file whose section is replaced")
    args = parser.parse_args(argv)
    if shutil.which("hyperfine") is None:
        print("startup_benchmark: hyperfine is missing: apt-get install hyperfine", file=sys.stderr)
        return 2
    binaries = [os.path.abspath(args.binary)] + [os.path.abspath(b) for b in args.compare]
    labels = [args.label] + args.compare_label + [None] * len(args.compare)
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            print(f"startup_benchmark: {binary} is not an executable: build it (scripts/package)", file=sys.stderr)
            return 2
    sizes = [5000] if args.quick else [5000, 1000000]
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="testfleet-startup-") as workdir:
            for binary, label in zip(binaries, labels):
                print(f"startup_benchmark: measuring {binary}", file=sys.stderr)
                measured = measure(binary, sizes, args.quick, workdir)
                measured["label"] = label or os.path.relpath(binary, REPO)
                measured["version"] = check_runs(binary, ["--version"], workdir).stdout.strip()
                measured["linkage"] = linkage(binary)
                measured["size"] = stripped_size(binary)
                runs.append(measured)
    except (BenchmarkError, OSError, subprocess.CalledProcessError) as e:
        print(f"startup_benchmark: {e}", file=sys.stderr)
        return 2
    section, all_met = format_section(runs, load, when)
    print(section)
    if not args.quick:
        replace_section(args.output, "startup-benchmark", section)
        print(f"startup_benchmark: wrote its section of {args.output}", file=sys.stderr)
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
