"""Groups spread over several Docker engines: a second dockerd on this machine, started for this module with
scripts/docker-engine.sh (its own socket, data root, bridge and address pool; the base image copied from the
first engine) and stopped at its end."""

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, clean_env, compose_leftovers, junit_counts, require_docker, run

SCRIPT = REPO / "scripts" / "docker-engine.sh"
NAME = "testfleet-docker-e2e2"
BRIDGE = "tfdocker-e2e2"
POOL = "172.26.0.0/16"
SECOND = f"unix:///run/{NAME}/docker.sock"


def engine_env(**extra):
    return clean_env(TESTFLEET_DOCKER_RUN=f"/run/{NAME}", TESTFLEET_DOCKER_DATA=f"/var/lib/{NAME}",
                     TESTFLEET_DOCKER_POOL=POOL, TESTFLEET_DOCKER_BRIDGE=BRIDGE,
                     TESTFLEET_DOCKER_SEED=first_engine(), **extra)


def first_engine():
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def script(command):
    result = subprocess.run([str(SCRIPT), command], env=engine_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"docker-engine.sh {command} failed:\n{result.stderr}"
    return result


def docker(host, *args, check=True):
    result = subprocess.run(["docker", *args], env=clean_env(DOCKER_HOST=host), capture_output=True, text=True,
                            timeout=120)
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)} on {host}: {result.stderr}"
    return result


def link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def guest_rules():
    """iptables rules tagged with the guest engine's run directory."""
    rules = []
    for table in ("filter", "nat"):
        out = subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
        rules += [line for line in out.splitlines() if f"/run/{NAME}" in line]
    return rules


def leftovers_on(host, run_id):
    prefix = f"testfleet-{run_id}"
    found = []
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        fmt = '{{.Label "com.docker.compose.project"}} ' + ("{{.Names}}" if kind[0] == "ps" else "{{.Name}}")
        out = docker(host, *kind, "--filter", "label=com.docker.compose.project", "--format", fmt).stdout
        found += [f"{kind[0]}: {line}" for line in out.splitlines() if line.startswith(prefix)]
    return found


@pytest.fixture(scope="module")
def second_engine():
    require_docker()
    if os.geteuid() != 0:
        message = "a second dockerd needs root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    script("start")
    try:
        yield SECOND
    finally:
        script("stop")
        assert not link_exists(BRIDGE), f"stop left the bridge {BRIDGE}"
        assert guest_rules() == [], "stop left iptables rules"


def test_a_guest_engine_leaves_the_first_alone(second_engine):
    first = first_engine()
    # Two daemons (their IDs may be equal: 20.10 derives it from /etc/docker/key.json, shared here).
    root = docker(second_engine, "info", "--format", "{{.DockerRootDir}}").stdout.strip()
    assert root == f"/var/lib/{NAME}" != docker(first, "info", "--format", "{{.DockerRootDir}}").stdout.strip()
    docker(second_engine, "image", "inspect", "debian:bookworm-slim")
    subnet = docker(second_engine, "network", "inspect", "bridge", "--format",
                    "{{range .IPAM.Config}}{{.Subnet}}{{end}}").stdout.strip()
    assert ipaddress.ip_network(subnet).subnet_of(ipaddress.ip_network(POOL))
    assert len(guest_rules()) == 3

    # A restart over the same data root: dockerd deletes a stale default bridge's interface at start, which
    # is always named docker0 and would be the first engine's.
    had_docker0 = link_exists("docker0")
    script("stop")
    assert not link_exists(BRIDGE) and guest_rules() == []
    script("start")
    assert link_exists("docker0") == had_docker0
    docker(first, "info")
    # The first engine's containers still get its default network.
    docker(first, "run", "--rm", "debian:bookworm-slim", "true")


COMPOSE_FILE = """\
# Built on both engines: Debian's pytest on the base image (layers cached in each engine's data root).
services:
  app:
    build: ./image
    depends_on: [echo]
    volumes: ["./tests:/app/tests"]
    working_dir: /app
  # A sidecar without a healthcheck: ready when its port accepts a connection.
  echo:
    image: debian:bookworm-slim
    command: ["perl", "-MIO::Socket::INET", "-e",
              "my $$s = IO::Socket::INET->new(LocalPort => 7000, Listen => 16, ReuseAddr => 1) or die $$!;
               while (my $$c = $$s->accept) { print $$c qq(echo here\\n); close $$c }"]
    expose: ["7000"]
"""
DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3-pytest && rm -rf /var/lib/apt/lists/*
"""
TESTS = """\
import os
import socket

import pytest


@pytest.mark.parametrize("i", range(8))
def test_where(i):
    # The group's own sidecar answers, and the group says which address its container has.
    with socket.create_connection(("echo", 7000), timeout=10) as connection:
        assert connection.recv(64).startswith(b"echo here")
    address = socket.gethostbyname(socket.gethostname())
    with open(f"/testfleet-reports/where-{os.environ['TESTFLEET_GROUP']}.txt", "a") as record:
        record.write(address + "\\n")
"""


def test_run_spreads_groups_over_both_engines(testfleet, second_engine):
    help_text = run([testfleet, "run", "--help"], cwd="/").stdout
    if "--docker-host" not in help_text:
        pytest.skip("`testfleet run` has no --docker-host option yet (the compose backend has docker_hosts; "
                    "its unit tests cover two engines until the CLI passes it)")
    first = first_engine()
    # A fixed path: the built image is named after the compose file's path, so every run of this test
    # rebuilds the same image from the engines' layer caches instead of adding one more.
    project = Path(tempfile.gettempdir()) / "testfleet-e2e-docker-hosts"
    shutil.rmtree(project, ignore_errors=True)
    (project / "image").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    (project / "image" / "Dockerfile").write_text(DOCKERFILE)
    (project / "tests" / "test_where.py").write_text(TESTS)

    started = int(time.time())
    # Static: each worker runs its own share, so that every engine's workers are seen running tests (the
    # dynamic schedule lets the first ready workers take the tests of those still being provisioned).
    result = run([testfleet, "run", "-n", "4", "--schedule", "static", "--compose", "docker-compose.yml",
                  "--service", "app", "--docker-host", first, "--docker-host", second_engine, "--",
                  "python3", "-m", "pytest", "--junit-xml=unit.xml", "tests"], cwd=project, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert junit_counts(project / "unit.xml")["tests"] == 8
    assert f"on {second_engine}" in result.stdout and f"on {first}" in result.stdout
    reports = project / "testfleet-reports"
    run_id = json.loads((reports / "run.json").read_text())["run_id"]

    # Equal CPU counts (one machine): groups 1-2 on the first engine, 3-4 on the second, whose containers
    # have addresses from the second engine's own pool.
    pool = ipaddress.ip_network(POOL)
    where = {int(p.stem.split("-")[1]): set(p.read_text().split()) for p in reports.glob("where-*.txt")}
    assert sorted(where) == [1, 2, 3, 4], result.stdout
    on_second = {g for g, addresses in where.items() if all(ipaddress.ip_address(a) in pool for a in addresses)}
    assert on_second == {3, 4}, where

    # The engines' own record of the projects whose containers they created.
    until = int(time.time()) + 1

    def projects_on(host):
        out = docker(host, "events", "--since", str(started), "--until", str(until), "--filter", "type=container",
                     "--filter", "event=create", "--format",
                     '{{index .Actor.Attributes "com.docker.compose.project"}}').stdout
        return {line for line in out.split() if line.startswith(f"testfleet-{run_id}-g")}

    assert projects_on(second_engine) == {f"testfleet-{run_id}-g3", f"testfleet-{run_id}-g4"}
    assert projects_on(first) == {f"testfleet-{run_id}-g1", f"testfleet-{run_id}-g2"}
    assert compose_leftovers(run_id) == []
    assert leftovers_on(second_engine, run_id) == []
    shutil.rmtree(project, ignore_errors=True)
