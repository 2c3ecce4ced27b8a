"""coverage.py data combined by testfleet itself: `testfleet merge coverage` on the data files of real `pytest --cov`
runs equals `coverage combine` of the same files (both read back by coverage.py's `coverage json`); a bad input is
named and exits 2; and a run whose Python cannot import coverage.py still combines its groups' data."""

import json
import os

import pytest

from conftest import PYTHON, clean_env, copy_fixture, run

# Two parts of the fixture's suite, as two groups would run them.
PARTS = (["tests/test_strings.py", "tests/api"], ["tests/test_arithmetic.py", "tests/test_outcomes.py"])


def measure(project, data, tests, *options):
    """A real `pytest --cov` run of `tests` in `project`, its data in `data`."""
    result = run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--cov=tests", "--cov-report=", *options,
                  *tests], cwd=project, env=clean_env(COVERAGE_FILE=data))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert data.exists(), result.stdout + result.stderr
    return data


def coverage(*args, cwd):
    result = run([PYTHON, "-m", "coverage", *args], cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def report(data, cwd, contexts=False):
    """What coverage.py makes of a data file: `coverage json`, files and totals. A line's contexts come out in the
    order of a Python set, so they are sorted."""
    out = data.with_name(data.name + ".json")
    coverage("json", "-q", f"--data-file={data}", "-o", out, *(["--show-contexts"] if contexts else []), cwd=cwd)
    parsed = json.loads(out.read_text())
    for file in parsed["files"].values():
        for line in file.get("contexts", {}):
            file["contexts"][line] = sorted(file["contexts"][line])
    return {"files": parsed["files"], "totals": parsed["totals"]}


@pytest.mark.parametrize("options", [[], ["--cov-branch"], ["--cov-branch", "--cov-context=test"]],
                         ids=["lines", "branches", "contexts"])
def test_merge_coverage_equals_coverage_combine(testfleet, tmp_path, options):
    project = copy_fixture("basic", tmp_path)
    inputs = [measure(project, tmp_path / f"group-{k}.coverage", part, *options) for k, part in enumerate(PARTS, 1)]

    result = run([testfleet, "merge", "coverage", "merged.coverage", "group-*.coverage"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "combined 2 coverage data files into merged.coverage" in result.stdout
    coverage("combine", "--keep", "-q", "--data-file=reference.coverage", *inputs, cwd=tmp_path)

    contexts = "--cov-context=test" in options
    merged = report(tmp_path / "merged.coverage", project, contexts)
    assert merged == report(tmp_path / "reference.coverage", project, contexts)
    # Each group added lines the other did not run.
    for data in inputs:
        assert report(data, project)["totals"]["covered_lines"] < merged["totals"]["covered_lines"]
    if "--cov-branch" in options:
        assert merged["totals"]["covered_branches"] > 0
    if contexts:
        names = {name for file in merged["files"].values() for names in file["contexts"].values() for name in names}
        assert any("test_strings.py::" in name for name in names) and any("test_arithmetic" in name for name in names)


def test_merge_coverage_remaps_the_roots_of_groups(testfleet, tmp_path):
    # The same project measured in two checkouts, as groups in different directories or containers measure it.
    first = copy_fixture("basic", tmp_path / "one")
    second = copy_fixture("basic", tmp_path / "two")
    inputs = [measure(first, tmp_path / "one.coverage", PARTS[0], "--cov-branch"),
              measure(second, tmp_path / "two.coverage", PARTS[1], "--cov-branch")]

    result = run([testfleet, "merge", "coverage", "--remap", f"{second}={first}", "merged.coverage", *inputs],
                 cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    (tmp_path / "paths.rc").write_text(f"[paths]\nsource =\n    {first}\n    {second}\n")
    coverage("combine", "--keep", "-q", "--rcfile=paths.rc", "--data-file=reference.coverage", *inputs, cwd=tmp_path)

    merged = report(tmp_path / "merged.coverage", first)
    assert merged == report(tmp_path / "reference.coverage", first)
    assert all(not os.path.isabs(path) for path in merged["files"]), "every file should be under the first root"
    assert merged["files"]["tests/test_strings.py"]["summary"]["covered_lines"] > 0
    assert merged["files"]["tests/test_arithmetic.py"]["summary"]["covered_lines"] > 0


def test_merge_coverage_names_a_bad_input(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    good = measure(project, tmp_path / "good.coverage", PARTS[0])
    bad = tmp_path / "notes.coverage"
    bad.write_text("this is not coverage data\n")

    result = run([testfleet, "merge", "coverage", "merged.coverage", good, bad], cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{bad}: not a coverage.py data file" in result.stderr
    assert str(good) not in result.stderr
    # The good input is still combined.
    assert report(tmp_path / "merged.coverage", project) == report(good, project)


def test_merge_coverage_refuses_line_and_branch_data(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    lines = measure(project, tmp_path / "lines.coverage", PARTS[0])
    branches = measure(project, tmp_path / "branches.coverage", PARTS[1], "--cov-branch")

    result = run([testfleet, "merge", "coverage", "merged.coverage", lines, branches], cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert str(lines) in result.stderr and str(branches) in result.stderr
    assert not (tmp_path / "merged.coverage").exists()

    for argv in (["merge", "coverage", "--remap", "no-equals-sign", "out", lines],
                 ["merge", "junit", "--remap", "/a=/b", "out.xml", lines]):
        result = run([testfleet, *argv], cwd=tmp_path)
        assert result.returncode == 2 and "--remap" in result.stderr, result.stdout + result.stderr


def test_run_combines_natively_where_coverage_py_is_not_importable(testfleet, tmp_path):
    # pytest runs through a script whose interpreter, `python3 -S`, finds no site-packages: only the script
    # knows where pytest and pytest-cov are, so `python3 -S -m coverage combine` would fail.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "pytest"
    wrapper.write_text("#!/usr/bin/python3 -S\nimport sys\nsys.path.append('/usr/lib/python3/dist-packages')\n"
                       "import pytest\nsys.exit(pytest.console_main())\n")
    wrapper.chmod(0o755)
    assert run(["/usr/bin/python3", "-S", "-c", "import coverage"], cwd=tmp_path).returncode != 0
    project = copy_fixture("basic", tmp_path)
    tests = [*PARTS[0], *PARTS[1]]

    env = clean_env(PATH=f"{bin_dir}:/usr/bin:/bin")
    env.pop("COVERAGE_FILE", None)
    result = run([testfleet, "run", "-n", "2", "--", "pytest", "--cov=tests", "--cov-report=xml", *tests],
                 cwd=project, env=env)
    assert result.returncode == 1, result.stdout + result.stderr  # test_outcomes.py fails on purpose
    output = result.stdout + result.stderr
    assert (f"coverage.py is not importable by /usr/bin/python3 -S: combined the coverage data of 2 groups natively "
            f"into {project / '.coverage'}") in output
    assert "warning: --cov-report xml cannot be produced without coverage.py" in output
    assert not (project / "coverage.xml").exists()

    # What a serial run measures.
    serial = copy_fixture("basic", tmp_path / "serial")
    measure(serial, tmp_path / "serial.coverage", tests)
    assert report(project / ".coverage", project) == report(tmp_path / "serial.coverage", serial)
