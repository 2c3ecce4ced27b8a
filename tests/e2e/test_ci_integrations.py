"""What the repository ships for CI systems: the GitHub composite action (action.yml), the example workflows
and manifests in ci-examples/, and the self-hosted runner image in deploy/github-runner/.

The files are parsed (python3-yaml) and their required keys checked by hand, action.yml and the GitHub
workflow also by action-validator (npm, when npm is there); every testfleet command they contain is checked
against `testfleet <subcommand> --help`, and the scripts they run are run for real where that is possible
here: the action's steps on a fixture project, the plan and merge steps on real shards. The runner image is
built and its entrypoint run without a token and with a fake one; the actions runner itself cannot be
downloaded here, so a stand-in for its config.sh and run.sh records what it was given."""

import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, clean_env, copy_fixture, junit_counts, require_docker, run, wait_for

ACTION = REPO / "action.yml"
GITHUB_WORKFLOW = REPO / "ci-examples" / "github" / "testfleet-shards.yml"
GITLAB_PIPELINE = REPO / "ci-examples" / "gitlab" / ".gitlab-ci.yml"
K8S_JOB = REPO / "ci-examples" / "kubernetes" / "testfleet-indexed-job.yaml"
RUNNER_DIR = REPO / "deploy" / "github-runner"
ACTION_VALIDATOR = "@action-validator/cli@0.6.0"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class GitLabLoader(yaml.SafeLoader):
    """GitLab's `!reference [job, key]` is a YAML tag of its own."""


GitLabLoader.add_constructor("!reference", lambda loader, node: ("!reference", loader.construct_sequence(node)))


def load(path, loader=yaml.SafeLoader):
    return yaml.load(path.read_text(), Loader=loader)


def triggers(workflow):
    # YAML 1.1 reads the key `on` as true.
    return workflow.get("on", workflow.get(True))


def commands_in(text):
    """Every testfleet command in a script, as argv lists (variables left as they are): the simple commands
    of each line (joined across backslash continuations), split at ; && || | and redirections."""
    commands = []
    for line in text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words = []
        for token in list(lexer) + [";"]:
            if token and all(c in "();<>|&" for c in token):
                while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
                    words = words[1:]  # VAR=value prefixes
                if words and words[0] == "testfleet":
                    commands.append(words)
                words = []
            else:
                words.append(token)
    return commands


def check_command(testfleet, argv, where, help_cache={}):
    """argv (testfleet SUB ...) names a real subcommand, and every --option before `--` is one it has."""
    assert len(argv) >= 2, f"{where}: `{' '.join(argv)}` has no subcommand"
    if argv[1].startswith("-"):
        sub = []  # a top-level option such as --version
    else:
        sub = argv[1:3] if argv[1] == "merge" else argv[1:2]
    key = " ".join(sub)
    if key not in help_cache:
        result = subprocess.run([testfleet, *sub, "--help"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"{where}: `testfleet {key} --help` failed: {result.stderr}"
        help_cache[key] = result.stdout
    options = argv[1 + len(sub):argv.index("--")] if "--" in argv else argv[1 + len(sub):]
    for word in options:
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            assert re.search(rf"(^|[\s,]){re.escape(name)}\b", help_cache[key], re.M), \
                f"{where}: `testfleet {key}` has no option {name}"
    return key


def action_validator():
    """The action-validator CLI, installed from npm into a cache once; None without npm."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    prefix = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "testfleet" / "action-validator-0.6.0"
    binary = prefix / "node_modules" / ".bin" / "action-validator"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--silent",
                                 ACTION_VALIDATOR], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0 and binary.exists(), f"npm install {ACTION_VALIDATOR} failed: {result.stderr}"
    return binary


# ---- The GitHub action ----------------------------------------------------------------------------------------

def test_action_metadata():
    action = load(ACTION)
    for key in ("name", "description", "inputs", "outputs", "runs"):
        assert key in action, f"action.yml has no {key}"
    inputs = action["inputs"]
    assert {"version", "testfleet-path", "args", "working-directory", "pip-args"} <= set(inputs)
    assert all("description" in spec for spec in inputs.values())
    runs = action["runs"]
    assert runs["using"] == "composite"
    step_ids = [step.get("id") for step in runs["steps"]]
    for step in runs["steps"]:
        assert "run" in step and step.get("shell") == "bash", step
        # Inputs reach the scripts through the environment, never pasted into them by the expression engine.
        assert not EXPRESSION.search(step["run"]), f"step {step.get('id')} pastes an expression into its script"
        for expression in EXPRESSION.findall(json.dumps(step.get("env", {})) + str(step.get("working-directory", ""))):
            kind, _, name = expression.partition(".")
            if kind == "inputs":
                assert name in inputs, f"{expression}: no such input"
            else:
                assert kind == "steps" and name.split(".")[0] in step_ids, expression
    for name, output in action["outputs"].items():
        step_id = EXPRESSION.search(output["value"]).group(1).split(".")[1]
        assert step_id in step_ids, f"output {name} names step {step_id}"
    for step in runs["steps"]:
        syntax = subprocess.run(["bash", "-n"], input=step["run"], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr
        if shutil.which("shellcheck"):
            lint = subprocess.run(["shellcheck", "-s", "bash", "-"], input=step["run"], capture_output=True, text=True)
            assert lint.returncode == 0, f"step {step.get('id')}:\n{lint.stdout}"
    validator = action_validator()
    if validator:
        result = subprocess.run([validator, str(ACTION)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def run_action(tmp_path, inputs, cwd):
    """Runs action.yml's steps as the runner does: `bash -e` with each step's env (inputs and earlier steps'
    outputs substituted), its working directory, and the GITHUB_* files. Returns (exit code, outputs, PATH
    additions, output text)."""
    action = load(ACTION)
    values = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    values.update(inputs)
    temp = tmp_path / "runner-temp"
    temp.mkdir(exist_ok=True)
    path_file = tmp_path / "github-path"
    path_file.write_text("")
    steps = {}
    text = ""

    def substitute(value):
        def one(match):
            kind, _, rest = match.group(1).partition(".")
            if kind == "inputs":
                return values[rest]
            step_id, _, output = rest.partition(".outputs.")
            return steps.get(step_id, {}).get(output, "")
        return EXPRESSION.sub(one, str(value))

    for step in action["runs"]["steps"]:
        output_file = tmp_path / f"output-{step['id']}"
        output_file.write_text("")
        env = clean_env(RUNNER_TEMP=temp, GITHUB_PATH=path_file, GITHUB_OUTPUT=output_file)
        env.update({k: substitute(v) for k, v in step.get("env", {}).items()})
        workdir = cwd / substitute(step.get("working-directory", "."))
        result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=workdir,
                                env=env, capture_output=True, text=True, timeout=600)
        text += result.stdout + result.stderr
        steps[step["id"]] = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        if result.returncode != 0:
            return result.returncode, steps, path_file.read_text().split(), text
    return 0, steps, path_file.read_text().split(), text


def test_the_action_installs_a_given_binary_and_runs_it(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    code, steps, paths, text = run_action(tmp_path, {
        "testfleet-path": testfleet,
        "args": "run -n 2 --reports-dir 'reports dir' -- pytest --junit-xml=unit.xml tests/test_strings.py",
    }, project)
    assert code == 0, text
    assert steps["run"]["exit-code"] == "0"
    assert len(paths) == 1 and os.path.samefile(Path(paths[0]) / "testfleet", testfleet)
    assert steps["install"]["version"] and steps["install"]["path"] == str(Path(paths[0]) / "testfleet")
    assert junit_counts(project / "unit.xml")["tests"] > 0
    assert (project / "reports dir" / "run.json").exists()

    # Failing tests: the step fails with testfleet's exit code, which is also an output.
    code, steps, _, text = run_action(tmp_path, {"testfleet-path": testfleet, "args": "run -n 2 -- pytest tests"},
                                      project)
    assert code == 1 and steps["run"]["exit-code"] == "1", text

    # No args: installed and on PATH, nothing run.
    code, steps, paths, text = run_action(tmp_path, {"testfleet-path": testfleet}, project)
    assert code == 0 and "exit-code" not in steps["run"] and paths, text

    code, _, _, text = run_action(tmp_path, {"testfleet-path": str(tmp_path / "nowhere")}, project)
    assert code == 2 and "::error title=testfleet::testfleet-path" in text


def with_testfleet_on_path(testfleet, tmp_path, **extra):
    """A user's environment in which `testfleet` is the binary under test, as the action or a package puts it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if not (bin_dir / "testfleet").exists():
        (bin_dir / "testfleet").symlink_to(testfleet)
    env = clean_env(**extra)
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    return env


# ---- The GitHub workflow -------------------------------------------------------------------------------------

def test_github_workflow(testfleet, tmp_path):
    workflow = load(GITHUB_WORKFLOW)
    assert {"push", "pull_request"} <= set(triggers(workflow))
    assert workflow["permissions"]["checks"] == "write" and workflow["permissions"]["pull-requests"] == "write"
    jobs = workflow["jobs"]
    assert set(jobs) == {"plan", "test", "merge"}
    for name, job in jobs.items():
        assert "runs-on" in job and job["steps"], name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{name}: a step needs exactly one of uses and run"

    plan, test, merge = jobs["plan"], jobs["test"], jobs["merge"]
    matrix_step = next(s for s in plan["steps"] if s.get("id") == "matrix")
    assert plan["outputs"]["matrix"] == "${{ steps.matrix.outputs.matrix }}"
    assert test["needs"] == "plan"
    assert test["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert test["strategy"]["fail-fast"] is False
    assert merge["needs"] == "test" and merge["if"] == "always()"

    # The matrix fields the jobs use are the ones `testfleet matrix` prints.
    project = copy_fixture("basic", tmp_path)
    output = tmp_path / "github-output"
    output.touch()
    env = with_testfleet_on_path(testfleet, tmp_path, TEST_COMMAND="pytest tests/", GITHUB_OUTPUT=output)
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", matrix_step["run"]], cwd=project, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    matrix = json.loads(output.read_text().split("matrix=", 1)[1])
    fields = set(matrix["include"][0])
    used = set(re.findall(r"matrix\.([a-z_]+)", json.dumps(test)))
    assert used <= fields, f"the test job uses matrix fields {used - fields} that testfleet matrix does not print"
    assert len(matrix["include"]) == 4

    # Every shard uploads its reports even when its tests fail; merge downloads exactly those.
    upload = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()" and upload["with"]["path"].rstrip("/") == "testfleet-reports"
    download = next(s for s in merge["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))
    prefix = upload["with"]["name"].split("${{")[0]
    assert download["with"]["pattern"] == prefix + "*"
    shards_dir = download["with"]["path"]
    publish = next(s for s in merge["steps"] if s.get("uses", "").startswith("EnricoMi/publish-unit-test-result-action@"))
    assert publish["if"] == "always()" and publish["with"]["files"] == "merged/junit.xml"
    coverage = next(s for s in merge["steps"] if "CodeCoverageSummary" in s.get("uses", ""))
    assert coverage["if"] == "always()" and coverage["with"]["filename"] == "merged/coverage.xml"
    comment = next(s for s in merge["steps"] if "sticky-pull-request-comment" in s.get("uses", ""))
    assert comment["with"]["path"] == "code-coverage-results.md" and "always()" in comment["if"]

    # The action's inputs as the workflow gives them exist.
    inputs = set(load(ACTION)["inputs"])
    for job in jobs.values():
        for step in job["steps"]:
            if step.get("uses", "").endswith("/testfleet@v1"):
                assert set(step.get("with", {})) <= inputs, step

    # The merge step, run for real on two shards' reports directories laid out as download-artifact does.
    merge_step = next(s for s in merge["steps"] if "testfleet merge runs" in s.get("run", ""))
    for k in (1, 2):
        shard = run([testfleet, "run", "-n", "2", "--shard", f"{k}/2", "--reports-dir",
                     f"{shards_dir}/{prefix}{k}", "--", "pytest", "--cov=tests", "--cov-report=xml",
                     "tests/test_strings.py", "tests/test_arithmetic.py"], cwd=project)
        assert shard.returncode in (0, 1), shard.stdout + shard.stderr
    summary = tmp_path / "summary.md"
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", merge_step["run"]], cwd=project,
                            env=with_testfleet_on_path(testfleet, tmp_path, GITHUB_STEP_SUMMARY=summary),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert junit_counts(project / "merged" / "junit.xml")["tests"] > 0
    assert (project / "merged" / "coverage.xml").exists() and "2 shards" in summary.read_text()

    validator = action_validator()
    if validator:
        result = subprocess.run([validator, str(GITHUB_WORKFLOW)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


# ---- GitLab -------------------------------------------------------------------------------------------------

def script_text(lines):
    return "\n".join(line for line in lines if isinstance(line, str))


def test_gitlab_pipeline(testfleet, tmp_path):
    pipeline = load(GITLAB_PIPELINE, GitLabLoader)
    stages = pipeline["stages"]
    jobs = {name: job for name, job in pipeline.items() if isinstance(job, dict) and "script" in job}
    assert set(jobs) == {"tests", "merge"}
    for name, job in jobs.items():
        assert job.get("stage") in stages, name
        for key in ("before_script", "script"):
            for line in job.get(key, []):
                if isinstance(line, tuple):  # !reference [job, key]
                    target, field = line[1]
                    assert field in pipeline[target], f"{name}: !reference to missing {target}.{field}"

    tests, merge = jobs["tests"], jobs["merge"]
    assert isinstance(tests["parallel"], int) and tests["parallel"] > 1
    assert tests["artifacts"]["when"] == "always" and "testfleet-reports/" in tests["artifacts"]["paths"]
    assert "CI_NODE_INDEX" in script_text(tests["script"]), "each shard needs a reports directory of its own"
    assert merge["needs"] == [{"job": "tests", "artifacts": True}] and merge["when"] == "always"
    reports = merge["artifacts"]["reports"]
    assert reports["junit"] == "merged/junit.xml"
    assert reports["coverage_report"] == {"coverage_format": "cobertura", "path": "merged/coverage.xml"}
    assert stages.index(tests["stage"]) < stages.index(merge["stage"])

    # The shards as GitLab runs them (testfleet reads CI_NODE_INDEX/CI_NODE_TOTAL), then the merge job's
    # script, for real: its exit code, its files, and the coverage line its `coverage` regex reads.
    project = copy_fixture("basic", tmp_path)
    for k in (1, 2):
        shard = run([testfleet, "run", "-n", "2", "--reports-dir", f"testfleet-reports/shard-{k}", "--", "pytest",
                     "--cov=tests", "--cov-report=xml", "tests/test_strings.py", "tests/test_arithmetic.py"], cwd=project,
                    env=clean_env(CI_NODE_INDEX=str(k), CI_NODE_TOTAL="2", GITLAB_CI="true"))
        assert shard.returncode in (0, 1) and f"shard {k}/2" in shard.stdout, shard.stdout + shard.stderr
    (project / ".test_durations").write_text("{}")
    result = subprocess.run(["bash", "-eo", "pipefail", "-c", script_text(merge["script"])], cwd=project,
                            env=with_testfleet_on_path(testfleet, tmp_path), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    assert junit_counts(project / "merged" / "junit.xml")["tests"] > 0
    percent = re.search(merge["coverage"].strip("/"), result.stdout, re.M)
    assert percent and 0 < float(percent.group(1)) <= 100, result.stdout


# ---- Kubernetes ---------------------------------------------------------------------------------------------

def test_kubernetes_indexed_job(testfleet, tmp_path):
    documents = [d for d in yaml.safe_load_all(K8S_JOB.read_text()) if d]
    job = next(d for d in documents if d["kind"] == "Job")
    claims = {d["metadata"]["name"] for d in documents if d["kind"] == "PersistentVolumeClaim"}
    assert job["apiVersion"] == "batch/v1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # required with backoffLimitPerIndex
    container = pod["containers"][0]
    argv = container["command"] + container["args"]
    assert argv[:2] == ["testfleet", "run"]
    assert argv[argv.index("--shards") + 1] == str(spec["completions"])
    env = {e["name"]: e for e in container["env"]}
    assert env["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    for volume in pod["volumes"]:
        assert volume["persistentVolumeClaim"]["claimName"] in claims
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert any(argv[argv.index("--reports-dir") + 1].startswith(m + "/") for m in mounts)

    # The pod's command line, as Kubernetes expands $(JOB_COMPLETION_INDEX), planned for index 2 of 4.
    project = copy_fixture("basic", tmp_path)
    expanded = [a.replace("$(JOB_COMPLETION_INDEX)", "2").replace("/reports/", str(tmp_path / "reports") + "/")
                for a in argv]
    result = run([testfleet, *expanded[1:expanded.index("--")], "--dry-run", *expanded[expanded.index("--"):]],
                 cwd=project, env=clean_env(JOB_COMPLETION_INDEX="2"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"shard 3/{spec['completions']}" in result.stdout


# ---- Every testfleet command in every file ------------------------------------------------------------------

def test_every_testfleet_command_is_real(testfleet):
    found = {}
    for job in load(GITHUB_WORKFLOW)["jobs"].values():
        for step in job["steps"]:
            for argv in commands_in(EXPRESSION.sub("X", step.get("run", ""))):
                found.setdefault(check_command(testfleet, argv, GITHUB_WORKFLOW.name), []).append(argv)
            if step.get("uses", "").endswith("/testfleet@v1") and "args" in step.get("with", {}):
                argv = ["testfleet", *shlex.split(EXPRESSION.sub("X", step["with"]["args"]))]
                found.setdefault(check_command(testfleet, argv, GITHUB_WORKFLOW.name), []).append(argv)
    pipeline = load(GITLAB_PIPELINE, GitLabLoader)
    for name, job in pipeline.items():
        if isinstance(job, dict):
            for key in ("before_script", "script"):
                for argv in commands_in(script_text(job.get(key, []))):
                    found.setdefault(check_command(testfleet, argv, f"{GITLAB_PIPELINE.name} {name}"), []).append(argv)
    job = next(d for d in yaml.safe_load_all(K8S_JOB.read_text()) if d and d["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    found.setdefault(check_command(testfleet, container["command"] + container["args"], K8S_JOB.name), [])
    assert {"matrix", "run", "merge runs"} <= set(found), found


# ---- The self-hosted runner image ---------------------------------------------------------------------------

FAKE_CONFIG = """#!/bin/bash
# Stand-in for the actions runner's config.sh: records what it was given, echoes the token as a careless
# tool might (the entrypoint must mask it), registers by writing .runner.
[[ -n ${ACTIONS_RUNNER_INPUT_TOKEN:-} ]] || { echo "config.sh: no token given"; exit 1; }
echo "config.sh: registering with token $ACTIONS_RUNNER_INPUT_TOKEN"
printf '%s' "$ACTIONS_RUNNER_INPUT_TOKEN" | sha256sum | cut -d' ' -f1 >.token-sha256
printf '%s\\n' "$@" >.config-args
name=unknown
while (($#)); do [[ $1 == --name ]] && name=$2; shift; done
printf '{"agentName": "%s"}' "$name" >.runner
echo "config.sh: Runner successfully added"
"""
FAKE_RUN = """#!/bin/bash
echo "run.sh: Listening for Jobs"
exec sleep 3600
"""


def fake_runner_tarball(path):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("config.sh", FAKE_CONFIG), ("run.sh", FAKE_RUN)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))


def docker(*args, check=True, **kwargs):
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, **kwargs)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def runner_image(tmp_path_factory):
    """The runner image, built with the compose file as a user would (`docker-compose build`)."""
    require_docker()
    folder = tmp_path_factory.mktemp("ghr") / "github-runner"
    shutil.copytree(RUNNER_DIR, folder)
    result = subprocess.run(["docker-compose", "-p", f"testfleet-ghr-{os.getpid()}", "build"], cwd=folder,
                            env=clean_env(), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    image = load(folder / "docker-compose.yml")["services"]["runner"]["image"]
    docker("image", "inspect", image)
    return image


def test_runner_refuses_to_start_without_a_token(runner_image):
    for env in ([], ["-e", "TOKEN="], ["-e", "TOKEN=   "], ["-e", "TOKEN_FILE=/nonexistent"]):
        result = docker("run", "--rm", *env, "-e", "RUNNER_URL=https://github.com/o/r", runner_image, check=False)
        assert result.returncode == 64, result.stdout + result.stderr
        if "TOKEN_FILE" in " ".join(env):
            assert "TOKEN_FILE names /nonexistent, which cannot be read" in result.stderr
        else:
            assert "TOKEN is not set" in result.stderr and "Refusing to start" in result.stderr, result.stderr
    result = docker("run", "--rm", "-e", "TOKEN=x", runner_image, check=False)
    assert result.returncode == 64 and "RUNNER_URL is not set" in result.stderr


def processes_of(container):
    """(host pid, uid, argv) of every process of a container."""
    top = docker("top", container, "-eo", "pid").stdout.split()[1:]
    found = []
    for pid in top:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            uid = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("Uid:"))
        except OSError:
            continue
        found.append((int(pid), int(uid), [a.decode(errors="replace") for a in argv if a]))
    return found


def test_runner_registers_and_listens_without_showing_the_token(runner_image, tmp_path):
    token = "AFAKETOKEN" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:20].upper()
    folder = tmp_path / "github-runner"
    shutil.copytree(RUNNER_DIR, folder)
    fake_runner_tarball(folder / "runner-dist" / "actions-runner-linux-x64-9.9.9.tar.gz")
    work = tmp_path / "work"
    socket = (os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock").removeprefix("unix://")
    project = f"testfleet-ghr-run-{os.getpid()}"
    env = clean_env(TOKEN=token, RUNNER_URL="https://github.com/example/shop", RUNNER_NAME="fleet-1",
                    DOCKER_SOCKET=socket, RUNNER_WORKDIR=work)
    compose = ["docker-compose", "-p", project]
    try:
        up = subprocess.run([*compose, "up", "-d", "--no-build"], cwd=folder, env=env, capture_output=True,
                            text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        container = f"{project}_runner_1"
        logs = lambda: docker("logs", container).stdout + docker("logs", container).stderr  # noqa: E731
        wait_for(lambda: "Listening for Jobs" in logs(), timeout=120, what="the runner listening")
        text = logs()
        assert token not in text
        assert "config.sh: registering with token ***" in text and "Runner successfully added" in text
        assert "registering runner 'fleet-1' with https://github.com/example/shop" in text

        # config.sh got exactly the token, and not on its command line.
        home = "/home/runner/actions-runner"
        recorded = docker("exec", container, "cat", f"{home}/.token-sha256").stdout.strip()
        assert recorded == hashlib.sha256(token.encode()).hexdigest()
        args = docker("exec", container, "cat", f"{home}/.config-args").stdout
        assert token not in args and "--unattended" in args and str(work) in args

        # No process shows it; the listening runner runs as the runner user, without it in its environment.
        inspect = json.loads(docker("inspect", container).stdout)[0]
        assert token not in json.dumps([inspect["Path"], inspect["Args"], inspect["Config"]["Cmd"],
                                        inspect["Config"]["Entrypoint"]])
        processes = processes_of(container)
        assert all(token not in " ".join(argv) for _, _, argv in processes), processes
        listener = next(p for p in processes if p[2][:2] == ["sleep", "3600"])
        assert listener[1] == 1001
        assert token.encode() not in Path(f"/proc/{listener[0]}/environ").read_bytes()

        # Jobs reach the host's engine through the mounted socket.
        version = docker("exec", "-u", "runner", container, "docker", "version", "--format", "{{.Server.Version}}")
        assert version.stdout.strip()

        # A restart keeps the registration: no token used again.
        docker("restart", container)
        wait_for(lambda: logs().count("Listening for Jobs") >= 2, timeout=120, what="the restarted runner")
        assert "runner 'fleet-1' is registered already" in logs() and logs().count("Runner successfully added") == 1
    finally:
        subprocess.run([*compose, "down", "-v", "-t", "1"], cwd=folder, env=env, capture_output=True, timeout=300)


def test_runner_token_from_a_file_is_not_in_the_container_configuration(runner_image, tmp_path):
    token = "AFILETOKEN" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:20].upper()
    dist = tmp_path / "dist"
    dist.mkdir()
    fake_runner_tarball(dist / "actions-runner-linux-x64-9.9.9.tar.gz")
    (tmp_path / "token").write_text(token + "\n")
    name = f"testfleet-ghr-file-{os.getpid()}"
    try:
        docker("run", "-d", "--name", name, "-v", f"{tmp_path / 'token'}:/run/secrets/runner-token:ro",
               "-v", f"{dist}:/opt/runner-dist:ro", "-e", "TOKEN_FILE=/run/secrets/runner-token",
               "-e", "RUNNER_URL=https://github.com/example", runner_image)
        wait_for(lambda: "Listening for Jobs" in docker("logs", name).stdout, timeout=120, what="the runner")
        assert token not in docker("inspect", name).stdout
        assert token not in docker("logs", name).stdout + docker("logs", name).stderr
        recorded = docker("exec", name, "cat", "/home/runner/actions-runner/.token-sha256").stdout.strip()
        assert recorded == hashlib.sha256(token.encode()).hexdigest()
    finally:
        docker("rm", "-f", "-v", name, check=False)
