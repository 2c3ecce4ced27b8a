"""Shards across machines: each shard a separate testfleet process collecting in its own order; the fan-in."""

import json
import random

from conftest import clean_env, copy_fixture, junit_cases, run

ENV_STYLES = [
    lambda k, n: {"CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": str(n)},                       # GitLab, 1-based
    lambda k, n: {"CIRCLE_NODE_INDEX": str(k - 1), "CIRCLE_NODE_TOTAL": str(n)},           # CircleCI, 0-based
    lambda k, n: {"BUILDKITE_PARALLEL_JOB": str(k - 1), "BUILDKITE_PARALLEL_JOB_COUNT": str(n)},
    lambda k, n: {"JOB_COMPLETION_INDEX": str(k - 1), "TESTFLEET_SHARDS": str(n)},         # Kubernetes
]


def test_shards_union_to_the_whole_suite_and_fan_in_equals_one_machine(testfleet, tmp_path, ):
    project = copy_fixture("basic", tmp_path)
    whole = run([testfleet, "run", "-n", "2", "--reports-dir", "whole", "--", "pytest", "tests"], cwd=project)
    assert whole.returncode == 1, whole.stdout + whole.stderr

    paths = sorted(str(p.relative_to(project)) for p in (project / "tests").iterdir()
                   if p.name.startswith("test_") or p.is_dir() and p.name != "__pycache__")
    ran = []
    for k in range(1, 5):
        order = paths[:]
        random.Random(k).shuffle(order)  # every machine collects in its own order
        env = clean_env(**ENV_STYLES[k - 1](k, 4))
        result = run([testfleet, "run", "-n", "2", "--reports-dir", f"shard-{k}", "--", "pytest", *order],
                     cwd=project, env=env)
        assert result.returncode in (0, 1), result.stdout + result.stderr
        assert f"shard {k}/4" in result.stdout
        record = json.loads((project / f"shard-{k}" / "run.json").read_text())
        assert record["shard"]["index"] == k and record["collected_tests"] == 334
        ran += [json.loads(line)["id"] for g in (project / f"shard-{k}").glob("group-*/progress.jsonl")
                for line in g.read_text().splitlines() if '"event": "test"' in line]
    assert len(ran) == len(set(ran)) == 334

    merged = run([testfleet, "merge", "runs", "all", "shard-*"], cwd=project)
    assert merged.returncode == 1, merged.stdout + merged.stderr
    assert junit_cases(project / "all" / "junit.xml") == junit_cases(project / "whole" / "junit.xml")
    assert len(json.loads((project / "all" / ".test_durations").read_text())) == 334
    assert "4 shards" in (project / "all" / "summary.md").read_text()

    missing = run([testfleet, "merge", "runs", "partial", "shard-1", "shard-2", "shard-4"], cwd=project)
    assert missing.returncode == 3
    assert "shard 3/4" in missing.stderr and "missing" in missing.stderr


def test_matrix_and_bad_shard_values(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "matrix", "3", "--", "pytest", "tests"], cwd=project)
    assert result.returncode == 0, result.stderr
    matrix = json.loads(result.stdout)
    assert [e["shard"] for e in matrix["include"]] == ["1/3", "2/3", "3/3"]
    assert sum(e["tests"] for e in matrix["include"]) == 334
    for bad in ("0/3", "4/3", "x/3", "3"):
        result = run([testfleet, "run", "--shard", bad, "--", "pytest", "tests"], cwd=project)
        assert result.returncode == 2 and "shard" in result.stderr, bad
    result = run([testfleet, "run", "--", "pytest", "tests"], cwd=project, env=clean_env(JOB_COMPLETION_INDEX="0"))
    assert result.returncode == 2 and "TESTFLEET_SHARDS" in result.stderr


def test_bazel_sharding(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    status = tmp_path / "status"
    xml = tmp_path / "bazel.xml"
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "tests/test_strings.py"], cwd=project,
                 env=clean_env(TEST_SHARD_INDEX="1", TEST_TOTAL_SHARDS="2", TEST_SHARD_STATUS_FILE=status,
                               XML_OUTPUT_FILE=xml))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "shard 2/2" in result.stdout
    assert status.exists() and xml.exists()
