#!/usr/bin/python3
"""Merge benchmark: `testfleet merge` against the tools users run today, on reports of a large suite.

Inputs (generated once into --work, then reused):
  junit      16 files, 200,000 testcases in all (pytest layout: one suite, ~2% failures with tracebacks,
             ~3% skipped, captured output on failures)
  cobertura  16 `coverage xml` reports of 2,000 source files, each part measured for real by coverage.py
             (branch coverage) on a generated project whose parts exercise different branches
  lcov       16 `coverage lcov` tracefiles from the same measurements

  coverage   the 16 coverage.py data files (SQLite) those reports were written from

Compared (wall time, best of --repeat runs, and peak RSS, from GNU time):
  junit      testfleet merge junit      vs junitparser merge (python3-junitparser)
             testfleet merge junit      vs junit-report-merger (npm, installed into --work on first use)
  cobertura  testfleet merge cobertura  vs coverage combine --keep + coverage xml (the data files are the
             same measurements the XML reports were written from)
  lcov       testfleet merge lcov       vs lcov -a (with branch data)
  coverage   testfleet merge coverage   vs coverage combine --keep (when this testfleet has `merge coverage`)

Targets: 10x faster than each, and a peak memory under 2x the size of the inputs. Each merged result is
checked against the other tool's (totals). Writes its section of BENCHMARKS.md unless --no-write.
Usage: bench/merge_benchmark.py --testfleet build/testfleet [--work /tmp/testfleet-merge-bench] [--kinds ...]
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmarks_md import replace_section  # noqa: E402

PYTHON = "/usr/bin/python3"
REPO = Path(__file__).resolve().parents[1]
PARTS = 16
TESTCASES = 200_000
SOURCE_FILES = 2_000


REPEAT = 5


def measure(argv, cwd=None, env=None):
    """Runs argv REPEAT times; returns (best seconds, largest peak RSS in bytes): the machine is shared, so
    the fastest run is the one least disturbed."""
    runs = [measure_once(argv, cwd, env) for _ in range(REPEAT)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def measure_once(argv, cwd=None, env=None):
    """Runs argv under GNU time; returns (seconds, peak RSS in bytes). Not wait4 on a child of ours: a
    child's peak counts the memory it had as a fork of this Python process before its exec."""
    with tempfile.NamedTemporaryFile("r") as measured:
        start = time.monotonic()
        result = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", measured.name, *map(str, argv)], cwd=cwd,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.monotonic() - start
        if result.returncode != 0:
            stderr = result.stderr.decode(errors="replace")
            raise SystemExit(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n{stderr[-2000:]}")
        kilobytes = int(measured.read().split()[-1])
    return seconds, kilobytes * 1024


# ---- inputs ------------------------------------------------------------------------------------------------

TRACEBACK = """    def test_{n}(client):
        response = client.get("/api/items/{n}")
>       assert response.status_code == 200
E       assert 500 == 200
E        +  where 500 = <Response [500]>.status_code

tests/api/test_items_{m}.py:{line}: AssertionError"""


def generate_junit(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    per_part = TESTCASES // PARTS
    for part in range(PARTS):
        lines = ['<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">']
        cases = []
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for i in range(per_part):
            n = part * per_part + i
            module = f"tests.api.test_items_{n // 100}"
            name = f"test_item_{n}[param-{n % 7}]"
            t = rng.random() * 0.5
            roll = rng.random()
            if roll < 0.02:
                counts["failures"] += 1
                text = TRACEBACK.format(n=n, m=n // 100, line=10 + n % 90).replace("&", "&amp;").replace(
                    "<", "&lt;").replace(">", "&gt;")
                cases.append(
                    f'<testcase classname="{module}" name="{name}" time="{t:.3f}"><failure message="assert 500 == '
                    f'200">{text}</failure><system-out>request id {n}\nGET /api/items/{n} 500</system-out>'
                    "</testcase>")
            elif roll < 0.05:
                counts["skipped"] += 1
                cases.append(
                    f'<testcase classname="{module}" name="{name}" time="0.000"><skipped type="pytest.skip" '
                    f'message="needs redis">tests/api/conftest.py:12: needs redis</skipped></testcase>')
            else:
                cases.append(f'<testcase classname="{module}" name="{name}" time="{t:.3f}" />')
        lines.append(
            f'<testsuite name="pytest" errors="0" failures="{counts["failures"]}" skipped="{counts["skipped"]}" '
            f'tests="{per_part}" time="{per_part * 0.25:.3f}" timestamp="2024-05-02T10:11:12.000000" '
            f'hostname="ci">')
        lines.extend(cases)
        lines.append("</testsuite></testsuites>")
        (folder / f"junit-{part:02}.xml").write_text("".join(lines))


MODULE = '''def classify_{i}(value, flags):
    result = []
    if value > {a}:
        result.append("big")
    elif value < -{a}:
        result.append("small")
    else:
        result.append("medium")
    for flag in flags:
        if flag == "{i}":
            result.append(flag)
    while value > 1000:
        value //= 2
    return result, value


def unused_{i}(x):
    if x:
        return 1
    return 2
'''


def generate_coverage(folder: Path):
    """A project of SOURCE_FILES modules measured in PARTS runs; each part calls every module with other
    values, so the parts cover different lines and branches."""
    project = folder / "project"
    package = project / "app"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    for i in range(SOURCE_FILES):
        (package / f"m{i:04}.py").write_text(MODULE.format(i=i, a=(i % 50) + 1))
    (project / ".coveragerc").write_text("[run]\nbranch = True\nsource = app\n")
    for part in range(PARTS):
        driver = project / f"drive_{part:02}.py"
        driver.write_text(
            "import importlib\n"
            f"for i in range({SOURCE_FILES}):\n"
            "    module = importlib.import_module(f'app.m{i:04}')\n"
            f"    if (i + {part}) % 3:\n"
            f"        getattr(module, f'classify_{{i}}')(({part} * 37 + i) % 200 - 100 + ({part} % 4) * 600,"
            f" ['{part}', str(i % 16)])\n")
        data = folder / f".coverage.part{part:02}"
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        subprocess.run([PYTHON, "-m", "coverage", "run", f"--data-file={data}", driver.name], cwd=project,
                       env=env, check=True, stdout=subprocess.DEVNULL)
        (folder / "cobertura").mkdir(exist_ok=True)
        (folder / "lcov").mkdir(exist_ok=True)
        subprocess.run([PYTHON, "-m", "coverage", "xml", f"--data-file={data}", "-o",
                        str(folder / "cobertura" / f"coverage-{part:02}.xml")], cwd=project, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([PYTHON, "-m", "coverage", "lcov", f"--data-file={data}", "-o",
                        str(folder / "lcov" / f"coverage-{part:02}.info")], cwd=project, env=env, check=True,
                       stdout=subprocess.DEVNULL)


# ---- runs --------------------------------------------------------------------------------------------------

def junit_totals(path):
    import xml.etree.ElementTree as ElementTree

    cases = list(ElementTree.parse(path).getroot().iter("testcase"))
    kinds = [{child.tag for child in case} for case in cases]
    return {"testcases": len(cases), "failures": sum("failure" in k for k in kinds),
            "skipped": sum("skipped" in k for k in kinds)}


def cobertura_totals(path):
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(path).getroot()
    return {k: root.get(k) for k in ("lines-valid", "lines-covered", "branches-valid", "branches-covered",
                                     "line-rate", "branch-rate")}


def lcov_totals(path):
    totals = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("LF", "LH", "BRF", "BRH", "FNF", "FNH"):
            totals[key] = totals.get(key, 0) + int(value)
    return totals


def size_of(files):
    return sum(f.stat().st_size for f in files)


ROWS = []


def report(kind, inputs, ours, theirs, their_name):
    input_bytes = size_of(inputs)
    speedup = theirs[0] / ours[0] if ours[0] > 0 else float("inf")
    memory_ratio = ours[1] / input_bytes
    print(f"{kind:10} inputs {len(inputs)} files, {input_bytes / 2**20:8.1f} MiB")
    print(f"{'':10} testfleet  {ours[0]:8.2f} s  peak {ours[1] / 2**20:8.1f} MiB ({memory_ratio:.2f}x input)")
    print(f"{'':10} {their_name:10} {theirs[0]:8.2f} s  peak {theirs[1] / 2**20:8.1f} MiB")
    verdict_speed = "ok" if speedup >= 10 else "MISSED"
    verdict_memory = "ok" if memory_ratio < 2 else "MISSED"
    print(f"{'':10} speedup {speedup:.1f}x (target 10x: {verdict_speed}), memory {memory_ratio:.2f}x input "
          f"(target < 2x: {verdict_memory})", flush=True)
    ROWS.append({"kind": kind, "files": len(inputs), "input": input_bytes, "ours": ours, "theirs": theirs,
                 "their_name": their_name, "speedup": speedup, "memory": memory_ratio, "same": None})
    return speedup >= 10 and memory_ratio < 2


def same(kind, ours, theirs):
    equal = ours == theirs
    print(f"{'':10} result {'equals' if equal else 'DIFFERS FROM'} the reference: {ours}"
          + ("" if equal else f" vs {theirs}"))
    if ROWS and ROWS[-1]["kind"] == kind:
        ROWS[-1]["same"] = equal
    return equal


def junit_report_merger(work: Path):
    """The jrm command of junit-report-merger, installed from npm into `work` the first time."""
    prefix = work / "npm"
    jrm = prefix / "node_modules" / ".bin" / "jrm"
    if not jrm.exists():
        print("installing junit-report-merger from npm...", flush=True)
        subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "junit-report-merger"],
                       check=True, stdout=subprocess.DEVNULL)
    version = json.loads((prefix / "node_modules" / "junit-report-merger" / "package.json").read_text())["version"]
    return jrm, version


def coverage_json_totals(data, project):
    """Files, executed lines and branch counts of a coverage.py data file, as `coverage json` reports them."""
    out = Path(tempfile.mkdtemp(prefix="tf-cov-")) / "report.json"
    subprocess.run([PYTHON, "-m", "coverage", "json", f"--data-file={data}", "-o", str(out)], cwd=project,
                   check=True, stdout=subprocess.DEVNULL)
    totals = json.loads(out.read_text())["totals"]
    shutil.rmtree(out.parent)
    return {k: totals.get(k) for k in ("covered_lines", "num_statements", "num_branches", "covered_branches")}


def has_merge_coverage(testfleet):
    result = subprocess.run([testfleet, "merge", "--help"], capture_output=True, text=True)
    return "coverage" in result.stdout.split("Positionals:")[-1]


def write_section(tools):
    load = os.getloadavg()
    lines = ["## Merge benchmark: `testfleet merge` against the tools users run today", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `bench/merge_benchmark.py`, best of "
             f"{REPEAT} runs of each command, one after the other; peak memory is the largest RSS GNU time saw.", "",
             f"- Machine: {os.cpu_count()} logical CPUs, {platform.platform()}, load average {load[0]:.2f} at the end.",
             f"- Tools: {tools}.",
             f"- Inputs: {PARTS} JUnit files of {TESTCASES:,} testcases in all (pytest layout, 2% failures with "
             f"tracebacks, 3% skipped); {PARTS} Cobertura reports, LCOV tracefiles and coverage.py data files of one "
             f"project of {SOURCE_FILES:,} modules measured for real by coverage.py with branch coverage.", "",
             "| merge | inputs | testfleet | peak memory (x input) | other tool | its time, peak memory | speed-up "
             "(target 10x) | memory (target < 2x) | same totals |",
             "|---|---|---:|---:|---|---:|---:|---|---|"]
    for row in ROWS:
        speed = "met" if row["speedup"] >= 10 else "MISSED"
        memory = "met" if row["memory"] < 2 else "MISSED"
        lines.append(
            f"| {row['kind']} | {row['files']} files, {row['input'] / 2**20:.1f} MiB | {row['ours'][0]:.2f} s | "
            f"{row['ours'][1] / 2**20:.1f} MiB ({row['memory']:.2f}x) | {row['their_name']} | "
            f"{row['theirs'][0]:.2f} s, {row['theirs'][1] / 2**20:.1f} MiB | {row['speedup']:.1f}x {speed} | {memory} | "
            f"{'yes' if row['same'] else 'NO'} |")
    met = sum(1 for row in ROWS if row["speedup"] >= 10 and row["memory"] < 2 and row["same"])
    lines += ["", f"Result: {met} of {len(ROWS)} comparisons meet both targets with the same totals.", "",
              "Reproduce: `bench/merge_benchmark.py --testfleet build/testfleet` (inputs are generated into "
              "--work once, then reused)."]
    replace_section(REPO / "BENCHMARKS.md", "merge-benchmark", "\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--testfleet", required=True, type=Path, help="the testfleet binary")
    parser.add_argument("--work", type=Path, default=Path("/tmp/testfleet-merge-bench"))
    parser.add_argument("--kinds", nargs="+", default=["junit", "cobertura", "lcov", "coverage"],
                        choices=["junit", "cobertura", "lcov", "coverage"])
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone")
    parser.add_argument("--regenerate", action="store_true", help="generate the inputs again")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs of each command; the fastest counts (testfleet's runs take tenths of a second, "
                             "which a shared machine's noise moves by a fifth)")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    testfleet = args.testfleet.resolve()
    work = args.work
    if args.regenerate and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    out.mkdir(exist_ok=True)

    all_met = True
    tools = [subprocess.run([testfleet, "--version"], capture_output=True, text=True).stdout.strip(),
             f"Python {platform.python_version()}", python_module_version("junitparser"),
             python_module_version("coverage"), subprocess.run(["lcov", "--version"], capture_output=True,
                                                               text=True).stdout.strip().split(":")[-1].strip()]
    if "junit" in args.kinds:
        if not (work / "junit").exists():
            print("generating JUnit inputs...", flush=True)
            generate_junit(work / "junit")
        inputs = sorted((work / "junit").glob("*.xml"))
        ours = measure([testfleet, "merge", "junit", out / "junit.xml", *inputs])
        theirs = measure([PYTHON, "-m", "junitparser", "merge", *inputs, out / "junitparser.xml"])
        all_met &= report("junit", inputs, ours, theirs, "junitparser")
        all_met &= same("junit", junit_totals(out / "junit.xml"), junit_totals(out / "junitparser.xml"))
        jrm, jrm_version = junit_report_merger(work)
        tools.append(f"junit-report-merger {jrm_version} (node {node_version()})")
        theirs = measure([jrm, out / "jrm.xml", *inputs])
        all_met &= report("junit", inputs, ours, theirs, "junit-report-merger")
        all_met &= same("junit", junit_totals(out / "junit.xml"), junit_totals(out / "jrm.xml"))

    if {"cobertura", "lcov", "coverage"} & set(args.kinds) and not (work / "lcov").exists():
        print("generating coverage inputs (coverage.py runs a project of 2,000 files 16 times)...", flush=True)
        generate_coverage(work)
    if "cobertura" in args.kinds:
        inputs = sorted((work / "cobertura").glob("*.xml"))
        ours = measure([testfleet, "merge", "cobertura", out / "coverage.xml", *inputs])
        data = sorted(work.glob(".coverage.part*"))
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        combined = work / ".coverage.combined"
        combined.unlink(missing_ok=True)
        combine = measure([PYTHON, "-m", "coverage", "combine", "--keep", f"--data-file={combined}", *data],
                          cwd=work / "project", env=env)
        xml = measure([PYTHON, "-m", "coverage", "xml", f"--data-file={combined}", "-o", out / "reference.xml"],
                      cwd=work / "project", env=env)
        theirs = (combine[0] + xml[0], max(combine[1], xml[1]))
        all_met &= report("cobertura", inputs, ours, theirs, "combine+xml")
        all_met &= same("cobertura", cobertura_totals(out / "coverage.xml"), cobertura_totals(out / "reference.xml"))

    if "lcov" in args.kinds:
        inputs = sorted((work / "lcov").glob("*.info"))
        ours = measure([testfleet, "merge", "lcov", out / "coverage.info", *inputs])
        argv = ["lcov", "--quiet", "--rc", "lcov_branch_coverage=1", "-o", out / "lcov-a.info"]
        for path in inputs:
            argv += ["-a", path]
        theirs = measure(argv)
        all_met &= report("lcov", inputs, ours, theirs, "lcov -a")
        all_met &= same("lcov", lcov_totals(out / "coverage.info"), lcov_totals(out / "lcov-a.info"))

    if "coverage" in args.kinds:
        if has_merge_coverage(testfleet):
            data = sorted(work.glob(".coverage.part*"))
            env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
            ours_file, theirs_file = out / ".coverage.testfleet", out / ".coverage.reference"
            ours_file.unlink(missing_ok=True)
            ours = measure([testfleet, "merge", "coverage", ours_file, *data])
            theirs_file.unlink(missing_ok=True)
            theirs = measure([PYTHON, "-m", "coverage", "combine", "--keep", f"--data-file={theirs_file}", *data],
                             cwd=work / "project", env=env)
            all_met &= report("coverage", data, ours, theirs, "coverage combine")
            all_met &= same("coverage", coverage_json_totals(ours_file, work / "project"),
                            coverage_json_totals(theirs_file, work / "project"))
        else:
            print("coverage   skipped: this testfleet has no `merge coverage`")

    if not args.no_write and ROWS:
        write_section(", ".join(tools))
    return 0 if all_met else 1


def python_module_version(name):
    result = subprocess.run([PYTHON, "-c", f"import importlib.metadata as m; print(m.version('{name}'))"],
                            capture_output=True, text=True)
    return f"{name} {result.stdout.strip() or '(not installed)'}"


def node_version():
    return subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
