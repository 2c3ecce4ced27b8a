"""The servers we start let in only their own group (issue 20), end to end with real PostgreSQL and Redis.

Every run here uses the secrets fixture (tests/fixtures/secrets): each group's tests reach their own servers
with the exported variables and see them refuse no secret and a wrong one. With TESTFLEET_FIXTURE_HOLD, every
group records its variables (secrets included) in a folder of the harness's, outside everything the run
writes, and waits; meanwhile this module plays another job on the same machine: it tries every group's
servers with nothing, with each other group's secret and with another run's, looks for the secrets on every
command line and in every file, and then, once the run is over, greps every file the run wrote and all it
printed for them.
"""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import psycopg2
import pytest
import redis

from conftest import (clean_env, copy_fixture, junit_counts, processes_with_env, require_docker, run,
                      wait_for)

SERVICES = ["--with", "postgres", "--with", "redis"]
PYTEST = ["pytest", "-q", "--junit-xml=unit.xml"]
# No engine for the native runs: `testfleet clean` must not touch other runs' compose projects.
NO_ENGINE = "unix:///nonexistent/testfleet-secrets/docker.sock"
HEX64 = re.compile(r"[0-9a-f]{64}")
RUN_ID = re.compile(r"testfleet run (\d{14}-[0-9a-f]{6})")


@pytest.fixture(scope="module")
def work_root():
    """Not under pytest's tmp_path, which a pytest session starting meanwhile resets to 0700, shutting out
    PostgreSQL (user postgres)."""
    path = Path(tempfile.mkdtemp(prefix="tf-secrets-", dir="/tmp"))
    os.chmod(path, 0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_password_of_ours(monkeypatch):
    """libpq would fall back to PGPASSWORD and ~/.pgpass: the harness's logins use exactly what they are given."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")


class Run:
    """One `testfleet run` of the secrets fixture in a sandbox of its own: `tmp` (TMPDIR: the servers'
    directories), `state` (XDG_RUNTIME_DIR: the state files `testfleet clean` reads), the project, and
    `records`, the harness's folder, which the run never writes."""

    def __init__(self, testfleet, root, name, env=None, servers=None):
        self.testfleet = testfleet
        self.proc = None
        self.base = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
        os.chmod(self.base, 0o711)
        self.tmp, self.state, self.records = self.base / "tmp", self.base / "state", self.base / "records"
        self.tmp.mkdir()
        os.chmod(self.tmp, 0o711)
        self.state.mkdir(mode=0o700)
        self.records.mkdir()
        self.project = copy_fixture("secrets", self.base)
        self.env = clean_env(TMPDIR=self.tmp, XDG_RUNTIME_DIR=self.state, DOCKER_HOST=NO_ENGINE,
                             TESTFLEET_FIXTURE_RECORD_DIR=self.records, **(env or {}))
        # Where the servers' directories go: TMPDIR, or TESTFLEET_SERVER_DIR when given.
        self.servers = self.tmp
        if servers is not None:
            self.servers = Path(servers)
            self.env["TESTFLEET_SERVER_DIR"] = str(servers)
        self.output_path = self.base / "testfleet.out"

    def start(self, args, hold=True):
        env = dict(self.env, TESTFLEET_FIXTURE_HOLD="1") if hold else self.env
        with open(self.output_path, "w") as out:
            self.proc = subprocess.Popen(
                [self.testfleet, "run", "--progress", "plain", *args, *SERVICES, "--", *PYTEST], cwd=self.project,
                env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def output(self):
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def records_now(self):
        return [json.loads(p.read_text()) for p in sorted(self.records.glob("secrets-*.json"))]

    def wait_held(self, groups):
        def held():
            if self.proc.poll() is not None:
                pytest.fail(f"testfleet ended ({self.proc.returncode}) before its groups held:\n{self.output()}")
            return len(self.records_now()) == groups
        wait_for(held, timeout=300, what=f"{groups} groups to hold")
        return self.records_now()

    def release(self):
        (self.records / "release").write_text("")

    def finish(self, timeout=600):
        self.release()
        self.proc.wait(timeout=timeout)
        return self.proc.returncode

    def run_id(self):
        found = RUN_ID.search(self.output())
        return found.group(1) if found else None

    def stop(self):
        """Whatever failed: nothing of this run may outlive the test."""
        self.release()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        run_id = self.run_id()
        if run_id:
            for pid in processes_with_env(f"TESTFLEET_RUN_ID={run_id}"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        run([self.testfleet, "clean"], cwd=self.project, env=self.env)


def secrets_of(records):
    return [secret for r in records for secret in (r["PGPASSWORD"], r["redis_password"])]


def postgres_login(record, password):
    """'ok', or why the group's PostgreSQL refused `password` (None: no password at all)."""
    kwargs = {"host": record["PGHOST"], "port": record["PGPORT"], "user": "postgres", "dbname": "postgres",
              "connect_timeout": 10}
    if password is not None:
        kwargs["password"] = password
    try:
        psycopg2.connect(**kwargs).close()
        return "ok"
    except psycopg2.OperationalError as error:
        return str(error)


def redis_login(record, password):
    """'ok', or why the group's Redis refused `password` (None: no AUTH at all)."""
    url = urllib.parse.urlsplit(record["REDIS_URL"])
    if url.scheme == "unix":
        client = redis.Redis(unix_socket_path=url.path, password=password, socket_timeout=10)
    else:
        client = redis.Redis(host=url.hostname, port=url.port, password=password, socket_timeout=10)
    try:
        client.ping()
        return "ok"
    except (redis.AuthenticationError, redis.ResponseError) as error:
        return str(error)
    finally:
        client.close()


def assert_only_its_own_secret_opens(record, others):
    """Each server of the record's group: refused without a secret, with every secret in `others` and with the
    group's secret for its other server; opened with its own."""
    assert postgres_login(record, record["PGPASSWORD"]) == "ok"
    assert redis_login(record, record["redis_password"]) == "ok"
    for attempt in [None, *others, record["redis_password"]]:
        answer = postgres_login(record, attempt)
        assert "password authentication failed" in answer or "no password supplied" in answer, (attempt, answer)
    for attempt in [None, *others, record["PGPASSWORD"]]:
        answer = redis_login(record, attempt)
        assert "WRONGPASS" in answer or "Authentication required" in answer or "invalid username-password" in answer, \
            (attempt, answer)


def files_holding(folder, secrets):
    """{path: [secrets it holds]} for every regular file under `folder`."""
    found = {}
    for path in Path(folder).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            held = [s for s in secrets if s.encode() in data]
            if held:
                found[path] = held
    return found


def command_lines_holding(secrets):
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if any(s.encode() in cmdline for s in secrets):
                found.append((entry.name, cmdline.replace(b"\0", b" ")[:200]))
    return found


def assert_secrets_only_in_redis_configurations(run_, records):
    """While the run holds: each group's Redis password in its redis.conf (mode 0600 in a 0700 directory) and
    nowhere else; PostgreSQL's in no file at all (it keeps a SCRAM verifier); none on any command line."""
    assert command_lines_holding(secrets_of(records)) == []
    found = {}
    for folder in {run_.base, run_.servers}:
        found.update(files_holding(folder, secrets_of(records)))
    found = {path: held for path, held in found.items() if run_.records not in path.parents}
    confs = sorted(path for path in found if path.name == "redis.conf")
    assert sorted(found) == confs, found
    assert sorted(held for path in confs for held in found[path]) == sorted(r["redis_password"] for r in records)
    for path in confs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent


def assert_nothing_printed_or_written(run_, records, extra_text=""):
    """After the run: no secret in what it printed, nor in any file it wrote (reports, logs, JUnit, run.json,
    the HTML report, CI summaries, state files), and its servers' directories are gone, credentials with them."""
    secrets = secrets_of(records)
    assert len(secrets) == len(set(secrets)) == 2 * len(records)
    for text in (run_.output(), extra_text):
        assert not [s for s in secrets if s in text]
    written = {path: held for path, held in files_holding(run_.base, secrets).items()
               if run_.records not in path.parents}
    assert written == {}, written
    for folder in {run_.tmp, run_.servers}:
        assert list(folder.iterdir()) == [], list(folder.iterdir())


def test_groups_reach_their_own_servers_alone_and_no_secret_is_printed(testfleet, work_root):
    summary = work_root / "step-summary.md"
    run_ = Run(testfleet, work_root, "tcp", env={"GITHUB_STEP_SUMMARY": summary}).start(["-n", "3", "--ci", "github"])
    try:
        records = run_.wait_held(3)
        for record in records:
            assert HEX64.fullmatch(record["PGPASSWORD"]) and HEX64.fullmatch(record["redis_password"]), record
            assert record["DATABASE_URL"] == (f"postgres://postgres:{record['PGPASSWORD']}@127.0.0.1:"
                                              f"{record['PGPORT']}/postgres")
            assert record["REDIS_URL"].startswith(f"redis://:{record['redis_password']}@127.0.0.1:")
            others = [s for other in records if other is not record for s in (other["PGPASSWORD"],
                                                                             other["redis_password"])]
            assert_only_its_own_secret_opens(record, others)
        assert_secrets_only_in_redis_configurations(run_, records)
        assert run_.finish() == 0, run_.output()
        assert junit_counts(run_.project / "unit.xml") == {"tests": 6, "failures": 0, "errors": 0, "skipped": 0}
        assert (run_.project / "testfleet-reports" / "run.json").exists()
        assert summary.exists() and "testfleet" in summary.read_text()
        assert_nothing_printed_or_written(run_, records, summary.read_text())
    finally:
        run_.stop()


def test_two_runs_at_once_cannot_reach_each_others_servers(testfleet, work_root):
    runs = [Run(testfleet, work_root, name).start(["-n", "2"]) for name in ("first", "second")]
    try:
        held = [r.wait_held(2) for r in runs]
        for mine, theirs in ((held[0], held[1]), (held[1], held[0])):
            for record in mine:
                assert_only_its_own_secret_opens(record, secrets_of(theirs))
        for r, records in zip(runs, held):
            assert r.finish() == 0, r.output()
            assert junit_counts(r.project / "unit.xml")["tests"] == 6
            assert_nothing_printed_or_written(r, records)
    finally:
        for r in runs:
            r.stop()


def server_pids(folder):
    """Processes working in `folder` or below: the servers of a native run, whose cwd is their {dir}."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def listening_tcp_inodes():
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def test_listen_socket_serves_on_private_sockets_only(testfleet, work_root):
    # A socket's path has at most 107 bytes: the servers go to a short directory of their own.
    servers = Path(tempfile.mkdtemp(prefix="tfs-", dir="/tmp"))
    os.chmod(servers, 0o711)
    run_ = Run(testfleet, work_root, "socket", servers=servers).start(["-n", "2", "--listen", "socket"])
    try:
        records = run_.wait_held(2)
        for record in records:
            socket_dir = Path(record["PGHOST"])
            assert socket_dir.is_relative_to(servers) and record["PGPORT"] == "5432", record
            assert record["DATABASE_URL"] == (f"postgres://postgres:{record['PGPASSWORD']}@/postgres"
                                              f"?host={socket_dir}")
            redis_socket = Path(urllib.parse.urlsplit(record["REDIS_URL"]).path)
            assert record["REDIS_URL"] == f"unix://:{record['redis_password']}@{redis_socket}?db=0"
            for path in (socket_dir / ".s.PGSQL.5432", redis_socket):
                assert stat.S_ISSOCK(path.stat().st_mode), path
                assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700, path.parent
            others = [s for other in records if other is not record for s in (other["PGPASSWORD"],
                                                                             other["redis_password"])]
            assert_only_its_own_secret_opens(record, others)
        # Not one TCP port: the servers hold no listening TCP socket.
        pids = server_pids(servers)
        assert len(pids) >= 4, pids
        listening = listening_tcp_inodes()
        for pid in pids:
            held = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir() if os.path.islink(fd)}
            assert not held & listening, (pid, Path(f"/proc/{pid}/cmdline").read_bytes())
        assert_secrets_only_in_redis_configurations(run_, records)
        assert run_.finish() == 0, run_.output()
        assert junit_counts(run_.project / "unit.xml") == {"tests": 6, "failures": 0, "errors": 0, "skipped": 0}
        assert_nothing_printed_or_written(run_, records)
    finally:
        run_.stop()
        shutil.rmtree(servers, ignore_errors=True)


def test_a_sigkilled_runs_credential_files_go_with_testfleet_clean(testfleet, work_root):
    run_ = Run(testfleet, work_root, "killed").start(["-n", "2"])
    try:
        records = run_.wait_held(2)
        run_id = run_.run_id()
        assert run_id, run_.output()
        run_.proc.kill()
        run_.proc.wait(timeout=60)
        for pid in processes_with_env(f"TESTFLEET_RUN_ID={run_id}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_for(lambda: server_pids(run_.tmp) == [], timeout=60, what="the servers to die with testfleet")
        # Left behind: the Redis passwords, still readable by their owner alone.
        left = files_holding(run_.tmp, secrets_of(records))
        assert sorted(p.name for p in left) == ["redis.conf", "redis.conf"], left
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in left)
        result = run([testfleet, "clean"], cwd=run_.project, env=run_.env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert run_id in result.stdout, result.stdout
        assert list(run_.tmp.iterdir()) == []
        assert not [s for s in secrets_of(records) if s in result.stdout + result.stderr]
        assert {p: held for p, held in files_holding(run_.base, secrets_of(records)).items()
                if run_.records not in p.parents} == {}
    finally:
        run_.stop()


def test_dry_run_shows_no_secret(testfleet, work_root):
    run_ = Run(testfleet, work_root, "dry").start(["-n", "2", "--dry-run"], hold=False)
    try:
        run_.proc.wait(timeout=300)
        assert run_.proc.returncode == 0, run_.output()
        assert "--dry-run: nothing was run." in run_.output()
        assert not HEX64.search(run_.output()), run_.output()
        assert list(run_.tmp.iterdir()) == []
    finally:
        run_.stop()


def test_configuration_secret_for_a_service_of_ones_own(testfleet, work_root):
    """{secret} reaches a service of the configuration's own through its environment and the group through
    its variables; on a command line it is refused before anything starts."""
    run_ = Run(testfleet, work_root, "generic")
    run_.env.pop("TESTFLEET_FIXTURE_RECORD_DIR")
    project = run_.project
    (project / "testfleet.toml").write_text(
        '[services.vault]\n'
        'command = ["/usr/bin/python3", "-c", "import os, time; open(\'token\', \'w\').write(os.environ[\'TOKEN\']); '
        'time.sleep(600)"]\n'
        'ports = []\n'
        'ready-command = ["/bin/sh", "-c", "test -s {dir}/token && test \\"$(cat {dir}/token)\\" = \\"$VAULT_TOKEN\\""]\n'
        'environment = { TOKEN = "{secret}" }\n'
        'variables = { VAULT_TOKEN = "{secret}" }\n')
    (project / "tests" / "test_vault.py").write_text(
        "import os, re\n"
        "def test_the_vault_token_is_a_secret():\n"
        "    assert re.fullmatch('[0-9a-f]{64}', os.environ['VAULT_TOKEN'])\n")
    result = run([testfleet, "run", "-n", "1", "--with", "vault", "--", "pytest", "-q", "tests/test_vault.py"],
                 cwd=project, env=run_.env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not HEX64.search(result.stdout + result.stderr)
    (project / "testfleet.toml").write_text(
        '[services.vault]\ncommand = ["vault", "server", "--token", "{secret}"]\n')
    result = run([testfleet, "run", "--with", "vault", "--", "pytest", "tests/test_vault.py"], cwd=project,
                 env=run_.env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "{secret} in a command line" in result.stderr, result.stderr
    assert list(run_.tmp.iterdir()) == []


def test_compose_sidecars_publish_no_port_on_the_host(testfleet, tmp_path):
    """The compose file publishes db's 5432 on the host; the project testfleet runs publishes nothing."""
    require_docker()
    project = copy_fixture("compose-services", tmp_path)
    (project / "app" / "test_hold.py").write_text(
        "import pathlib, time\n"
        "def test_hold():\n"
        "    pathlib.Path('/app/held').write_text('')\n"
        "    deadline = time.monotonic() + 300\n"
        "    while not pathlib.Path('/app/release').exists():\n"
        "        assert time.monotonic() < deadline, 'nobody released this group'\n"
        "        time.sleep(0.2)\n")
    assert '"5432:5432"' in (project / "docker-compose.yml").read_text()
    output = tmp_path / "testfleet.out"
    with open(output, "w") as out:
        proc = subprocess.Popen([testfleet, "run", "-n", "1", "--progress", "plain", "--compose", "docker-compose.yml",
                                 "--service", "app", "--", "pytest", "-q", "test_hold.py"], cwd=project,
                                env=clean_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (project / "app" / "held").exists() or proc.poll() is not None, timeout=900,
                 what="the group to hold")
        assert proc.poll() is None, output.read_text()
        run_id = RUN_ID.search(output.read_text()).group(1)
        ids = subprocess.run(["docker", "ps", "-q", "--filter",
                              f"label=com.docker.compose.project=testfleet-{run_id}-g1"],
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
        assert len(ids) >= 3, ids  # db, redis and the test container
        for container in json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True,
                                                   timeout=60, check=True).stdout):
            name = container["Name"]
            assert not container["HostConfig"].get("PortBindings"), (name, container["HostConfig"]["PortBindings"])
            published = {port: bound for port, bound in (container["NetworkSettings"]["Ports"] or {}).items() if bound}
            assert published == {}, (name, published)
        (project / "app" / "release").write_text("")
        assert proc.wait(timeout=600) == 0, output.read_text()
    finally:
        (project / "app" / "release").write_text("")
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=300)


def test_a_secret_a_failing_test_prints_is_masked_everywhere(testfleet, work_root):
    """A test that fails on an assertion about DATABASE_URL puts the password in pytest's output and its JUnit
    failure message; testfleet shows that output (FAILED block, CI folds, HTML report, merged JUnit)."""
    run_ = Run(testfleet, work_root, "leaky", env={"GITHUB_STEP_SUMMARY": work_root / "leaky-summary.md"})
    (run_.project / "tests" / "test_leaks.py").write_text(
        "import os\n"
        "def test_compares_the_url():\n"
        "    assert os.environ['DATABASE_URL'] == 'postgres://nobody'\n")
    try:
        run_.start(["-n", "1", "--ci", "github"], hold=False)
        assert run_.proc.wait(timeout=600) == 1, run_.output()
        records = run_.records_now()
        assert len(records) == 1
        assert "***" in run_.output(), run_.output()
        assert_nothing_printed_or_written(run_, records, (work_root / "leaky-summary.md").read_text())
    finally:
        run_.stop()
