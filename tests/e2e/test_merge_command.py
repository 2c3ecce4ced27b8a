"""`testfleet merge` on real files: globs, a bad input named with its position, the good ones still merged."""

from conftest import REPO, junit_counts, run

DATA = REPO / "tests" / "data"


def test_merge_junit_with_a_bad_input(testfleet, tmp_path):
    good = DATA / "junit" / "pytest"
    inputs = sorted(str(p) for p in good.rglob("*.xml"))[:3]
    assert inputs
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuites>\n  <testsuite name='x'>\n    <testcase name='t'>\n")
    out = tmp_path / "merged.xml"
    result = run([testfleet, "merge", "junit", out, *inputs, bad], cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "bad.xml:" in result.stderr
    assert junit_counts(out)["tests"] > 0


def test_merge_junit_glob(testfleet, tmp_path):
    for i in range(3):
        (tmp_path / f"part-{i}.xml").write_text(
            f"<testsuite name='s' tests='1'><testcase classname='c' name='t{i}' time='1,000.5'/></testsuite>")
    result = run([testfleet, "merge", "junit", "out.xml", "part-*.xml"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = junit_counts(tmp_path / "out.xml")
    assert counts["tests"] == 3


def test_merge_lcov_and_cobertura(testfleet, tmp_path):
    (tmp_path / "a.info").write_text("TN:\nSF:src/a.c\nDA:1,1\nDA:2,0\nLF:2\nLH:1\nend_of_record\n")
    (tmp_path / "b.info").write_text("TN:\nSF:src/a.c\nDA:1,2\nDA:2,3\nLF:2\nLH:2\nend_of_record\n")
    result = run([testfleet, "merge", "lcov", "all.info", "a.info", "b.info"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "all.info").read_text()
    assert "DA:1,3" in text and "DA:2,3" in text and "LH:2" in text
    inputs = sorted(str(p) for p in (DATA / "cobertura").rglob("*.xml") if "bad" not in str(p))[:2]
    result = run([testfleet, "merge", "cobertura", "coverage.xml", *inputs], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "coverage.xml").read_text().startswith("<?xml")


def test_merge_usage_errors(testfleet, tmp_path):
    result = run([testfleet, "merge", "csv", "out", "in"], cwd=tmp_path)
    assert result.returncode == 2
    result = run([testfleet, "merge", "junit", "out.xml", "nothing-*.xml"], cwd=tmp_path)
    assert result.returncode == 2
