"""The compose backend on an engine that cannot see this machine's files, as an engine on another machine
(`--docker-host ssh://...`, `DOCKER_HOST=tcp://...`) cannot: a second dockerd started for this module in a
mount namespace of its own, with an empty tmpfs on /tmp, where this module's projects live. The code is in
the image, nothing of the user's is bind-mounted: testfleet's plugin, the tests each worker runs and the
JUnit each worker writes must travel through the engine itself (the containers' own streams)."""

import os
import shutil
import subprocess

import pytest

from conftest import REPO, clean_env, copy_fixture, junit_cases, junit_counts, require_docker, run

SCRIPT = REPO / "scripts" / "docker-engine.sh"
NAME = "testfleet-docker-remote"
REMOTE = f"unix:///run/{NAME}/docker.sock"
IMAGES = ["testfleet-prebuild-app", "testfleet-prebuild-db", "testfleet-prebuild-redis"]

COMPOSE_FILE = """\
# compose-services with its code copied into the image (nothing bind-mounted): built on the remote engine.
services:
  app:
    build: ./app
    depends_on:
      db:
        condition: service_healthy
      redis:
        condition: service_started
    environment:
      DATABASE_URL: postgresql://postgres@db:5432/postgres
      REDIS_URL: redis://redis:6379/0
      PYTHONDONTWRITEBYTECODE: "1"
    working_dir: /app
  db:
    image: testfleet-prebuild-db
    healthcheck:
      test: ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres"]
      interval: 1s
      timeout: 3s
      retries: 60
  redis:
    image: testfleet-prebuild-redis
    expose: ["6379"]
"""
DOCKERFILE = """\
FROM testfleet-prebuild-app
COPY . /app
"""


def first_engine():
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def engine_env():
    return clean_env(TESTFLEET_DOCKER_RUN=f"/run/{NAME}", TESTFLEET_DOCKER_DATA=f"/var/lib/{NAME}",
                     TESTFLEET_DOCKER_POOL="172.25.0.0/16", TESTFLEET_DOCKER_BRIDGE="tfdocker-rmt",
                     TESTFLEET_DOCKER_SEED=first_engine(), TESTFLEET_DOCKERD_PRIVATE_TMP="1")


def script(command):
    result = subprocess.run([str(SCRIPT), command], env=engine_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"docker-engine.sh {command} failed:\n{result.stderr}"


@pytest.fixture(scope="module")
def remote_engine():
    require_docker()
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("a dockerd in its own mount namespace needs root")
        pytest.skip("a dockerd in its own mount namespace needs root")
    script("start")
    try:
        # The fixture images, copied from the first engine (nothing can be pulled here).
        save = subprocess.Popen(["docker", "save", *IMAGES], env=clean_env(DOCKER_HOST=first_engine()),
                                stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "load"], env=clean_env(DOCKER_HOST=REMOTE), stdin=save.stdout,
                              capture_output=True, text=True, timeout=600)
        save.stdout.close()
        assert save.wait(timeout=600) == 0 and load.returncode == 0, load.stderr
        yield REMOTE
    finally:
        script("stop")


@pytest.fixture
def project(tmp_path):
    project = copy_fixture("compose-services", tmp_path)
    shutil.rmtree(project / "images")
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    (project / "app" / "Dockerfile").write_text(DOCKERFILE)
    return project


def test_the_engine_sees_none_of_this_machines_files(remote_engine, project):
    seen = run(["docker", "run", "--rm", "-v", f"{project}:/p", "debian:bookworm-slim", "ls", "-A", "/p"],
               cwd=project, env=clean_env(DOCKER_HOST=remote_engine))
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == "", seen.stdout  # the project is there on this machine, not on the engine's


@pytest.mark.parametrize("schedule", ["dynamic", "static"])
def test_workers_on_an_engine_without_our_files(testfleet, remote_engine, project, schedule):
    env = clean_env(DOCKER_HOST=remote_engine)
    result = run([testfleet, "run", "-n", "2", "--schedule", schedule, "--progress", "plain", "--compose",
                  "docker-compose.yml", "--service", "app", "--", "pytest", "-p", "no:cacheprovider",
                  "--junit-xml=unit.xml", "."], cwd=project, env=env, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No module named" not in result.stdout
    assert junit_counts(project / "unit.xml")["tests"] == 11
    cases = junit_cases(project / "unit.xml")
    assert all(outcome == "passed" for _, _, outcome in cases), cases
    assert {c for c, _, _ in cases} == {"test_cache", "test_database"}
    # Each worker's JUnit came back through its container's stdout.
    assert (project / "testfleet-reports" / "group-1" / "junit.xml").exists()
    run_id = next(line.split()[2].rstrip(":") for line in result.stdout.splitlines()
                  if line.startswith("testfleet run "))
    left = run(["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project", "--format",
                '{{.Label "com.docker.compose.project"}}'], cwd=project, env=env).stdout.split()
    assert [p for p in left if p.startswith(f"testfleet-{run_id}")] == []
