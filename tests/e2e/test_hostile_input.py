"""Hostile input: each a clear error (exit 2, naming the file, line, key or value at fault) or correct
behaviour, never a crash. Test IDs with shell metacharacters and newlines, 10 KB IDs, 100,000 tests in one
group, durations files that are not JSON or hold negative, NaN or huge values, configurations with wrong
types, compose files without the named service."""

import json

import pytest

from conftest import PYTHON, junit_cases, junit_counts, require_docker, run

# pytest plugins that cost time per test and that these projects do not use.
LEAN = ["-p", "no:cacheprovider", "-p", "no:logging", "-p", "no:warnings", "-p", "no:faulthandler", "-p", "no:cov",
        "-p", "no:django", "-p", "no:xdist"]
HOSTILE = ["$(touch pwned)", "`touch pwned`", "; touch pwned", "| touch pwned", "&& touch pwned", "> pwned", "'", '"',
           "\\", "\n", "line one\nline two", "trailing newline\n", "tab\there", "\r", "{tests}", "{junit} {group}",
           "--junit-xml=evil.xml", "-k x", "*", "?", "[a-z]", "~", "#comment", "::", "a::b", "é", "\x1b[31mred",
           "  spaces  ", "%s%n", "$HOME", "${PATH}", "!!", "\x07", "&", "<tag>", "]]>"]
CRASH_SIGNS = ("terminate called", "Segmentation fault", "Aborted", "core dumped", "AddressSanitizer",
               "std::", "what():")


def write_project(root, files):
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def assert_no_crash(result):
    text = result.stdout + result.stderr
    assert result.returncode in (0, 1, 2, 3), f"exit {result.returncode}:\n{text[-3000:]}"
    assert not any(sign in text for sign in CRASH_SIGNS), text[-3000:]


RAW_IDS = '''
def pytest_make_parametrize_id(config, val, argname):
    # The ID exactly as given: pytest would otherwise escape what is not printable ASCII.
    return val if isinstance(val, str) else None
'''


def test_ids_with_shell_metacharacters_and_newlines(testfleet, tmp_path):
    project = write_project(tmp_path / "ids", {
        "conftest.py": RAW_IDS,
        "tests/test_hostile.py": (
            "import os\nimport pytest\n"
            f"HOSTILE = {HOSTILE!r}\n"
            "@pytest.mark.parametrize('value', HOSTILE)\n"
            "def test_id(value):\n"
            "    assert not os.path.exists('pwned') and not os.path.exists('evil.xml')\n"
            "@pytest.mark.parametrize('value', ['fails $(touch pwned)\\nnewline'])\n"
            "def test_fails(value):\n"
            "    assert value == 'something else'\n"),
    })
    serial = run([PYTHON, "-m", "pytest", "-q", "--junit-xml=serial.xml", "tests"], cwd=project)
    assert serial.returncode == 1, serial.stdout[-3000:]
    result = run([testfleet, "run", "-n", "3", "--", "pytest", "-q", "--junit-xml=unit.xml", "tests"], cwd=project)
    assert_no_crash(result)
    assert result.returncode == 1, result.stdout[-5000:] + result.stderr
    assert junit_cases(project / "unit.xml") == junit_cases(project / "serial.xml")
    assert sum(junit_cases(project / "unit.xml").values()) == len(HOSTILE) + 1
    assert not (project / "pwned").exists() and not (project / "evil.xml").exists()
    # The plan lists the same IDs, newlines and all.
    plan = run([testfleet, "plan", "-n", "3", "--format", "json", "--", "pytest", "tests"], cwd=project)
    assert plan.returncode == 0, plan.stderr
    ids = [t["id"] for g in json.loads(plan.stdout)["groups"] for t in g["tests"]]
    assert len(ids) == len(set(ids)) == len(HOSTILE) + 1
    assert "tests/test_hostile.py::test_id[line one\nline two]" in ids


def test_generic_runner_ids_with_shell_metacharacters(testfleet, tmp_path):
    """IDs one a line (so no newline) through {tests} and {tests_file}: always words, never a shell."""
    one_line = [i for i in HOSTILE if i.isprintable() and i.strip() == i and i]
    runner = tmp_path / "runner.py"
    runner.write_text(
        "import sys, json\n"
        f"IDS = {one_line!r}\n"
        "if sys.argv[1] == '--list':\n"
        "    print('\\n'.join(IDS))\n"
        "    sys.exit(0)\n"
        "junit, ids = sys.argv[2], sys.argv[3:]\n"
        "if ids[0] == '--file':\n"
        "    ids = open(ids[1], encoding='utf-8').read().splitlines()\n"
        "unknown = [i for i in ids if i not in IDS]\n"
        "from xml.sax.saxutils import quoteattr\n"
        "cases = ''.join(f'<testcase classname=\"g\" name={quoteattr(i)}/>' for i in ids if i in IDS)\n"
        "open(junit, 'w', encoding='utf-8').write(f'<testsuite tests=\"{len(ids)}\">{cases}</testsuite>')\n"
        "sys.exit(1 if unknown else 0)\n")
    for placeholder in (["{tests}"], ["--file", "{tests_file}"]):
        out = tmp_path / ("words" if len(placeholder) == 1 else "file")
        out.mkdir()
        result = run([testfleet, "run", "-n", "3", "--list-command", f"{PYTHON} {runner} --list", "--", PYTHON,
                      str(runner), "--run", "{junit}", *placeholder], cwd=out)
        assert_no_crash(result)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        names = {name for _, name, _ in junit_cases(out / "testfleet-reports" / "junit.xml")}
        assert names == set(one_line)
        assert not (out / "pwned").exists()


def test_ten_kilobyte_ids(testfleet, tmp_path):
    project = write_project(tmp_path / "long", {
        "conftest.py": RAW_IDS,
        "tests/test_long.py": (
            "import pytest\n"
            "LONG = ['a' * 10240 + str(i) for i in range(3)] + ['$(x);' * 2048, 'é' * 5120]\n"
            "@pytest.mark.parametrize('value', LONG)\n"
            "def test_long(value):\n"
            "    assert len(value) >= 5120\n"),
    })
    serial = run([PYTHON, "-m", "pytest", "-q", "--junit-xml=serial.xml", "tests"], cwd=project)
    assert serial.returncode == 0, serial.stdout[-2000:]
    (project / ".test_durations").write_text(json.dumps(
        {f"tests/test_long.py::test_long[{'a' * 10240}{i}]": 1.5 for i in range(3)}))
    result = run([testfleet, "run", "-n", "2", "--store-durations", "--", "pytest", "-q", "--junit-xml=unit.xml",
                  "tests"], cwd=project)
    assert_no_crash(result)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert junit_cases(project / "unit.xml") == junit_cases(project / "serial.xml")
    stored = json.loads((project / ".test_durations").read_text())
    assert len(stored) == 5 and max(len(k) for k in stored) > 10240


def test_hundred_thousand_tests_in_one_group(testfleet, tmp_path):
    project = write_project(tmp_path / "many", {
        "tests/test_many.py": ("import pytest\n@pytest.mark.parametrize('i', range(100000))\n"
                               "def test_trivial(i):\n    pass\n"),
    })
    result = run([testfleet, "run", "-n", "1", "--progress", "plain", "--", "pytest", "-q", "-s", *LEAN,
                  "--assert=plain", "--junit-xml=unit.xml", "tests"], cwd=project, timeout=1500)
    assert_no_crash(result)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "100000 tests: 100000 passed" in result.stdout
    counts = junit_counts(project / "unit.xml")
    assert counts["tests"] == 100000 and counts["failures"] == counts["errors"] == 0
    cases = junit_cases(project / "unit.xml")
    assert len(cases) == 100000 and set(cases.values()) == {1}


SMALL = {"tests/test_small.py": "import pytest\n@pytest.mark.parametrize('i', range(9))\ndef test_s(i):\n    pass\n"}
SMALL_IDS = [f"tests/test_small.py::test_s[{i}]" for i in range(9)]


@pytest.mark.parametrize("name, text", [
    ("not json", "{this is not json"),
    ("empty", ""),
    ("binary", "\x00\xff\xfe garbage"),
    ("a list", "[1, 2, 3]"),
    ("a number", "42"),
    ("negative", json.dumps({i: -5.0 for i in SMALL_IDS})),
    ("NaN", "{" + ", ".join(f'"{i}": NaN' for i in SMALL_IDS) + "}"),
    ("Infinity", "{" + ", ".join(f'"{i}": Infinity' for i in SMALL_IDS) + "}"),
    ("huge", json.dumps({i: 1e308 for i in SMALL_IDS})),
    ("huge and tiny", json.dumps({i: (1e308 if n % 2 else 1e-308) for n, i in enumerate(SMALL_IDS)})),
    ("strings", json.dumps({i: "fast" for i in SMALL_IDS})),
    ("nulls and lists", json.dumps({SMALL_IDS[0]: None, SMALL_IDS[1]: [1], SMALL_IDS[2]: {"a": 1}})),
    ("duplicate keys", '{"%s": 1, "%s": 2}' % (SMALL_IDS[0], SMALL_IDS[0])),
    ("deep nesting", "[" * 100000 + "]" * 100000),
], ids=lambda value: value if len(value) < 20 else "")
def test_hostile_durations_file(testfleet, tmp_path, name, text):
    project = write_project(tmp_path / "p", SMALL)
    durations = project / "durations.json"
    durations.write_bytes(text.encode("utf-8", "surrogateescape") if name != "binary" else b"\x00\xff\xfe garbage")
    result = run([testfleet, "plan", "-n", "3", "--format", "json", "--durations", str(durations), "--", "pytest",
                  "tests"], cwd=project)
    assert_no_crash(result)
    if result.returncode == 2:
        # A clear error: the file is named.
        assert "durations.json" in result.stderr, result.stderr
        return
    # Or correct behaviour: a valid plan of every test once, no group empty, no negative or non-finite time.
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    ids = [t["id"] for g in plan["groups"] for t in g["tests"]]
    assert sorted(ids) == sorted(SMALL_IDS)
    assert len(plan["groups"]) == 3 and all(g["tests"] for g in plan["groups"])
    seconds = [t["seconds"] for g in plan["groups"] for t in g["tests"]]
    assert all(isinstance(s, (int, float)) and 0 <= s < float("inf") for s in seconds), seconds


def test_hostile_durations_file_in_a_real_run(testfleet, tmp_path):
    project = write_project(tmp_path / "p", SMALL)
    (project / ".test_durations").write_text(json.dumps({i: v for i, v in zip(SMALL_IDS, [1e308, -1, 0, 1e-308])}))
    result = run([testfleet, "run", "-n", "3", "--store-durations", "--", "pytest", "-q", "--junit-xml=unit.xml",
                  "tests"], cwd=project)
    assert_no_crash(result)
    if result.returncode == 2:
        assert ".test_durations" in result.stderr, result.stderr
        return
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert junit_counts(project / "unit.xml")["tests"] == 9
    stored = json.loads((project / ".test_durations").read_text())
    assert all(0 <= v < 1e300 for k, v in stored.items() if k in SMALL_IDS[4:]), stored


def test_malformed_durations_junit_is_named(testfleet, tmp_path):
    project = write_project(tmp_path / "p", SMALL)
    (project / "old.xml").write_text("<testsuite><testcase name='x' time='-nan'><")
    result = run([testfleet, "plan", "-n", "2", "--durations-junit", "old.xml", "--", "pytest", "tests"],
                 cwd=project)
    assert_no_crash(result)
    assert result.returncode == 2 and "old.xml" in result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize("config, key", [
    ('groups = "four"\n', "groups"),
    ("groups = -3\n", "groups"),
    ("groups = 0\n", "groups"),
    ("groups = 2.5\n", "groups"),
    ("groups = 1e12\n", "groups"),
    ("groups = nan\n", "groups"),
    ("with = 5\n", "with"),
    ('with = ["postgres", 7]\n', "with"),
    ('timeout = "ten"\n', "timeout"),
    ("timeout = -1\n", "timeout"),
    ("timeout = inf\n", "timeout"),
    ("kill-grace = -5\n", "kill-grace"),
    ("command = 42\n", "command"),
    ('command = ["pytest", 3]\n', "command"),
    ('algorithm = "random"\n', "algorithm"),
    ('store-durations = "yes"\n', "store-durations"),
    ("durations = 7\n", "durations"),
    ("reports-dir = true\n", "reports-dir"),
    ('progress = ["plain"]\n', "progress"),
    ("groups = \n", "testfleet.toml"),
    ("[services.redis]\nready-timeout = \"soon\"\n", "ready-timeout"),
    ("[services.redis]\nready-timeout = -2\n", "ready"),
    ("[services.web]\ncommand = 5\n", "command"),
    ("[services]\nweb = 3\n", "web"),
    ('[services.web]\ncommand = ["python3", "-m", "http.server", "{prot}"]\n', "prot"),
    ("[services.web]\ncommand = []\n", "command"),
])
def test_configuration_with_wrong_types(testfleet, tmp_path, config, key):
    project = write_project(tmp_path / "p", SMALL)
    (project / "testfleet.toml").write_text(config)
    services = [word for name in ("redis", "web") if f"[services.{name}]" in config for word in ("--with", name)]
    result = run([testfleet, "run", *services, "--", "pytest", "tests"], cwd=project, timeout=300)
    assert_no_crash(result)
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr}"
    assert "testfleet.toml" in result.stderr and key in result.stderr, result.stderr


def test_pyproject_with_wrong_types(testfleet, tmp_path):
    project = write_project(tmp_path / "p", SMALL)
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.testfleet]\ngroups = [2]\n')
    result = run([testfleet, "run", "--", "pytest", "tests"], cwd=project)
    assert_no_crash(result)
    assert result.returncode == 2 and "pyproject.toml:5" in result.stderr and "groups" in result.stderr, result.stderr


@pytest.mark.parametrize("compose, wanted", [
    ("services:\n  web:\n    image: debian:bookworm-slim\n", ["app", "web"]),
    ('version: "3"\n', ["app"]),
    ("services: {}\n", []),
    ("services:\n  App:\n    image: debian:bookworm-slim\n", ["app", "App"]),
    ("{{{ not yaml", ["docker-compose.yml"]),
    ("", ["docker-compose.yml"]),
])
def test_compose_file_without_the_named_service(testfleet, tmp_path, compose, wanted):
    require_docker()
    project = write_project(tmp_path / "p", SMALL)
    (project / "docker-compose.yml").write_text(compose)
    result = run([testfleet, "run", "--compose", "docker-compose.yml", "--service", "app", "--", "pytest", "tests"],
                 cwd=project, timeout=300)
    assert_no_crash(result)
    assert result.returncode == 2, f"exit {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr}"
    assert all(word in result.stderr for word in wanted), result.stderr
    assert "docker-compose.yml" in result.stderr, result.stderr
