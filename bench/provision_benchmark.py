#!/usr/bin/env python3
"""Provisioning and teardown per group, for each backend, measured side by side in one run.

Native: `testfleet run -n N --with postgres --with redis` on a trivial suite; run.json gives each group's
time to ready (PostgreSQL copied from the run's template and Redis, both answering) and its teardown.
Target: ready in under 1.0 s per group after the first (the template, made once per run, is reported apart).

Compose: the same through `--compose` on tests/fixtures/compose-services, against Docker's own time for the
same work: `docker-compose -p X up -d` of the sidecars plus waiting until they are healthy, and `down -v`.
Target: testfleet's overhead beyond Docker's own under 0.5 s per group.

Writes its section of BENCHMARKS.md (between the provision-benchmark markers) unless --no-write.
"""

import argparse
import concurrent.futures
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import replace_section

REPO = Path(__file__).resolve().parents[1]


def run_json(project):
    return json.loads((project / "testfleet-reports" / "run.json").read_text())


def trivial_suite(root):
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_trivial.py").write_text(
        "import pytest\n@pytest.mark.parametrize('i', range(32))\ndef test_trivial(i):\n    pass\n")
    return root


def testfleet_groups(binary, project, args, groups, env):
    result = subprocess.run([binary, "run", "-n", str(groups), "--progress", "plain", *args], cwd=project, env=env,
                            capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        sys.exit(f"testfleet failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    record = run_json(project)
    return ([g["provision_seconds"] for g in record["groups"]], [g["teardown_seconds"] for g in record["groups"]],
            record["times"]["prepare_seconds"])


def docker_own(project, compose, groups, env):
    """Docker's own time for what testfleet does per group, all groups at once as testfleet does them:
    sidecars up and healthy, then down -v."""
    with concurrent.futures.ThreadPoolExecutor(groups) as pool:
        results = list(pool.map(lambda i: one_project(project, compose, i, env), range(groups)))
    return [up for up, _ in results], [down for _, down in results]


def one_project(project, compose, i, env):
    name = f"tfbench{os.getpid()}g{i}"
    # No fixed host port: several projects at once, as testfleet runs them.
    text = (project / "docker-compose.yml").read_text().replace('      - "5432:5432"\n', "")
    own = project / f"own-{i}.yml"
    own.write_text(text.replace("    ports:\n", "    ports: []\n"))
    # Images from the build cache, untimed: testfleet too builds once, before provisioning.
    subprocess.run([*compose, "-p", name, "-f", own.name, "build", "db", "redis"], cwd=project, env=env, check=True,
                   capture_output=True)
    start = time.monotonic()
    subprocess.run([*compose, "-p", name, "-f", own.name, "up", "-d", "--no-build", "db", "redis"],
                   cwd=project, env=env, check=True, capture_output=True)
    container = f"{name}_db_1" if compose[-1] == "docker-compose" else f"{name}-db-1"
    while True:
        state = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container],
                               env=env, capture_output=True, text=True)
        if state.stdout.strip() == "healthy":
            break
        time.sleep(0.05)
    up = time.monotonic() - start
    start = time.monotonic()
    subprocess.run([*compose, "-p", name, "-f", own.name, "down", "-v", "--remove-orphans", "-t", "1"],
                   cwd=project, env=env, check=True, capture_output=True)
    down = time.monotonic() - start
    subprocess.run(["docker", "image", "rm", f"{name}_db", f"{name}_redis", f"{name}-db", f"{name}-redis"], env=env,
                   capture_output=True)
    return up, down


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=str(REPO / "build" / "testfleet"))
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--skip-compose", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    env = dict(os.environ)
    lines = [f"## Provisioning per group ({time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} cores, "
             f"load {os.getloadavg()[0]:.1f}, {args.groups} groups)", "",
             "| backend | prepare (once per run) | ready per group, median (max) | teardown per group, median | "
             "Docker's own up+healthy / down, median | overhead beyond Docker per group | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory(prefix="tf-bench-", dir="/tmp") as tmp:
        os.chmod(tmp, 0o711)
        project = trivial_suite(Path(tmp) / "native")
        ready, down, prepare = testfleet_groups(args.binary, project, ["--with", "postgres", "--with", "redis", "--",
                                                                        "pytest", "-q", "tests"], args.groups, env)
        verdict = "met" if median(ready) < 1.0 else "missed"
        lines.append(f"| native postgres+redis | {prepare:.2f} s | {median(ready):.2f} s ({max(ready):.2f} s) | "
                     f"{median(down):.2f} s | - | - | ready < 1.0 s: {verdict} |")
        print(f"native: prepare {prepare:.2f}s, ready median {median(ready):.2f}s max {max(ready):.2f}s, "
              f"teardown median {median(down):.2f}s")
        if not args.skip_compose:
            compose_project = Path(tmp) / "compose"
            shutil.copytree(REPO / "tests" / "fixtures" / "compose-services", compose_project)
            ready, down, prepare = testfleet_groups(args.binary, compose_project, [
                "--compose", "docker-compose.yml", "--service", "app", "--", "pytest", "-q", "."], args.groups, env)
            compose = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
            own_up, own_down = docker_own(compose_project, compose, args.groups, env)
            overhead = median(ready) + median(down) - median(own_up) - median(own_down)
            verdict = "met" if overhead < 0.5 else "missed"
            lines.append(f"| compose db+redis | {prepare:.2f} s | {median(ready):.2f} s ({max(ready):.2f} s) | "
                         f"{median(down):.2f} s | {median(own_up):.2f} s / {median(own_down):.2f} s | "
                         f"{overhead:+.2f} s | < 0.5 s: {verdict} |")
            print(f"compose: prepare {prepare:.2f}s, ready median {median(ready):.2f}s, teardown {median(down):.2f}s; "
                  f"docker's own {median(own_up):.2f}s up, {median(own_down):.2f}s down; overhead {overhead:+.2f}s")
    lines += ["", "Groups provision concurrently, and Docker's own times are measured the same way (all projects at once). Native servers keep their data where a user's run without TMPDIR keeps it: /dev/shm. "
              "The fixed host port of the fixture's db is dropped by testfleet; Docker's own run starts it as written. Reproduce: `bench/provision_benchmark.py`."]
    if not args.no_write:
        replace_section(REPO / "BENCHMARKS.md", "provision-benchmark", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
