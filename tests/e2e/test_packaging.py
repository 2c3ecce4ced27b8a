"""What we ship, tested the way users get it: the static binary in a container that has nothing but busybox
(resolving compose service names through Docker's DNS), `cmake --install` to a prefix with the man page,
the .deb installed and removed with dpkg in a Debian container, and the wheel installed into a fresh venv.

Every artifact comes from the static build directory (TESTFLEET_STATIC_BUILD_DIR, default build-static/ of
this source tree), configured with `cmake --preset static` when it does not exist yet and brought up to date
here (scripts/test builds it before ctest, so this is normally a no-op).
"""

import gzip
import os
import re
import shutil
import subprocess
import sys
import tarfile
import textwrap
import uuid
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, clean_env, require_docker, run

sys.path.insert(0, str(REPO / "packaging"))
import build_wheel  # noqa: E402

STATIC_BUILD = Path(os.environ.get("TESTFLEET_STATIC_BUILD_DIR") or REPO / "build-static")
SIZE_LIMIT = 5_000_000
BUSYBOX = Path("/bin/busybox")
DEBIAN_IMAGE = "debian:bookworm-slim"


def project_version():
    text = (REPO / "CMakeLists.txt").read_text()
    return re.search(r"project\(testfleet VERSION ([0-9.]+)", text).group(1)


def check(result, what):
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def static_build():
    """The static build directory, configured and built (incrementally) from this source tree."""
    if not (STATIC_BUILD / "CMakeCache.txt").exists():
        check(run(["cmake", "-S", REPO, "-B", STATIC_BUILD, "--preset", "static"], cwd=REPO, timeout=300),
              "configuring the static build")
    check(run(["cmake", "--build", STATIC_BUILD, "--target", "testfleet", "testfleet_man", "--", "-j2"], cwd=REPO,
              timeout=1500), "building the static testfleet")
    return STATIC_BUILD


@pytest.fixture(scope="module")
def static_binary(static_build):
    return static_build / "testfleet"


@pytest.fixture(scope="module")
def docker():
    require_docker()


def docker_run(*args, timeout=120):
    return subprocess.run(["docker", *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


@pytest.fixture(scope="module")
def busybox_image(docker, static_binary, tmp_path_factory):
    """An image made with `docker import` from a directory holding busybox and testfleet, nothing else: no
    libc, no libstdc++, no Python. Removed afterwards."""
    if not BUSYBOX.exists():
        pytest.fail("/bin/busybox is missing: apt-get install busybox-static")
    rootfs = tmp_path_factory.mktemp("rootfs")
    (rootfs / "bin").mkdir()
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    shutil.copy2(static_binary, rootfs / "bin" / "testfleet")
    for directory in ("etc", "tmp", "proc", "sys", "dev"):
        (rootfs / directory).mkdir()
    tarball = rootfs.parent / f"{rootfs.name}.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(rootfs, arcname=".")
    name = f"testfleet-packaging-busybox:{uuid.uuid4().hex[:10]}"
    check(docker_run("import", "--change", "ENV PATH=/bin", tarball, name), "docker import")
    yield name
    docker_run("rmi", "-f", name)


@pytest.fixture
def network(docker):
    """A user-defined bridge network: containers on it find each other by name through Docker's DNS."""
    name = f"testfleet-packaging-{uuid.uuid4().hex[:10]}"
    check(docker_run("network", "create", name), "docker network create")
    containers = []
    yield name, containers
    for container in containers:
        docker_run("rm", "-f", container)
    docker_run("network", "rm", name)


def test_static_binary_is_static_small_and_versioned(static_binary):
    data = static_binary.read_bytes()
    # No program interpreter: the kernel runs it without any ld.so or libc of the machine.
    assert build_wheel.static_elf_architecture(data, static_binary) == "x86_64"
    readelf = check(run(["readelf", "--dynamic", static_binary], cwd=REPO), "readelf")
    assert "NEEDED" not in readelf.stdout
    assert "no symbols" in run(["nm", static_binary], cwd=REPO).stderr, "the shipped binary is not stripped"
    assert len(data) < SIZE_LIMIT, f"{static_binary} is {len(data)} bytes, over the {SIZE_LIMIT} limit"
    version = check(run([static_binary, "--version"], cwd=REPO), "--version").stdout.strip()
    match = re.fullmatch(rf"testfleet {re.escape(project_version())} \(revision ([0-9a-f]{{12}}|unknown)\)", version)
    assert match, version
    # The revision is the commit the binary was built at: one of this repository's (when it is one).
    if (REPO / ".git").exists():
        assert match.group(1) != "unknown", version
        known = run(["git", "cat-file", "-e", f"{match.group(1)}^{{commit}}"], cwd=REPO)
        assert known.returncode == 0, f"{version}: not a commit of {REPO}"


def test_static_binary_runs_where_there_is_no_libc(busybox_image):
    listing = docker_run("run", "--rm", busybox_image, "sh", "-c",
                         "find / -xdev \\( -name 'lib*.so*' -o -name 'python*' -o -name 'ld-linux*' \\) | wc -l"
                         " ; ls /bin")
    check(listing, "listing the image")
    lines = listing.stdout.split()
    assert lines[0] == "0", f"the minimal image holds libraries or Python: {listing.stdout}"
    version = check(docker_run("run", "--rm", busybox_image, "testfleet", "--version"), "testfleet --version")
    assert version.stdout.startswith(f"testfleet {project_version()} (revision ")
    helped = check(docker_run("run", "--rm", busybox_image, "testfleet", "help", "wait"), "testfleet help wait")
    assert "Usage: testfleet wait" in helped.stdout


def test_wait_resolves_a_container_name_on_a_user_defined_network(busybox_image, network):
    net, containers = network
    db = f"{net}-db"
    containers.append(db)
    # busybox's httpd stands in for PostgreSQL: all `wait` needs is a TCP port that opens.
    check(docker_run("run", "-d", "--name", db, "--network", net, "--network-alias", "db", busybox_image,
                     "httpd", "-f", "-p", "5432"), "starting the db container")
    waited = docker_run("run", "--rm", "--network", net, busybox_image, "testfleet", "wait", "db:5432", "--timeout",
                        "30", "--", "echo", "db is up")
    check(waited, "testfleet wait db:5432 in the minimal container")
    assert "testfleet wait: db:5432 is open after" in waited.stderr
    assert waited.stdout.strip() == "db is up"
    # A name nobody answers for: Docker's DNS says so at once, and wait names the host.
    missing = docker_run("run", "--rm", "--network", net, busybox_image, "testfleet", "wait", "nosuch:5432",
                         "--timeout", "3")
    assert missing.returncode == 3, missing.stderr
    assert "nosuch:5432 did not open within 3s: cannot resolve nosuch: no such host" in missing.stderr


def compose_command():
    configured = os.environ.get("TESTFLEET_COMPOSE")
    if configured:
        return configured.split()
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose: apt-get install docker-compose")


def test_wait_resolves_a_compose_service_name(busybox_image, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(textwrap.dedent(f"""\
        version: "3"
        services:
          db:
            image: {busybox_image}
            command: ["httpd", "-f", "-p", "5432"]
          app:
            image: {busybox_image}
            depends_on: [db]
            command: ["testfleet", "wait", "db:5432", "--timeout", "30", "--", "echo", "compose db is up"]
        """))
    compose = compose_command() + ["-p", f"testfleet-packaging-{uuid.uuid4().hex[:10]}", "-f",
                                   str(tmp_path / "docker-compose.yml")]
    try:
        result = run(compose + ["run", "--rm", "app"], cwd=tmp_path, timeout=180)
        check(result, "compose run app")
        assert "compose db is up" in result.stdout
        assert "testfleet wait: db:5432 is open after" in result.stderr
    finally:
        run(compose + ["down", "--volumes", "--remove-orphans", "--timeout", "1"], cwd=tmp_path, timeout=180)


def long_options(help_text):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", help_text))


def test_cmake_install_puts_the_binary_and_its_man_page_in_the_prefix(static_binary, static_build, tmp_path):
    prefix = tmp_path / "prefix"
    check(run(["cmake", "--install", static_build, "--prefix", prefix, "--strip"], cwd=REPO), "cmake --install")
    installed = prefix / "bin" / "testfleet"
    assert check(run([installed, "--version"], cwd=tmp_path), "installed --version").stdout.startswith("testfleet ")
    assert (prefix / "share" / "doc" / "testfleet" / "README.md").is_file()
    page = gzip.decompress((prefix / "share" / "man" / "man1" / "testfleet.1.gz").read_bytes()).decode()

    # troff reads it without a warning.
    rendered = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=page, capture_output=True, text=True)
    assert rendered.returncode == 0 and rendered.stderr == "", rendered.stderr
    # Generated from the same definitions as --help: every command, and every option of every command.
    top = check(run([installed, "--help"], cwd=tmp_path), "--help").stdout
    commands = re.findall(r"^  ([a-z]+) {2,}", top.split("Subcommands:")[1], flags=re.MULTILINE)
    assert {"run", "plan", "merge", "wait", "clean", "help"} <= set(commands)
    plain = page.replace("\\-", "-")
    for command in commands:
        assert f'.SS "testfleet {command} ' in plain
        own = check(run([installed, command, "--help"], cwd=tmp_path), f"{command} --help").stdout
        assert check(run([installed, "help", command], cwd=tmp_path), f"help {command}").stdout == own
        for option in long_options(own) - {"--help"}:
            assert option in plain, f"the man page lacks {command} {option}"


def test_deb_installs_and_removes_cleanly(docker, static_build, tmp_path):
    out = tmp_path / "deb"
    check(run(["cpack", "-G", "DEB", "-B", out, "--config", static_build / "CPackConfig.cmake"], cwd=static_build,
              timeout=300), "cpack -G DEB")
    debs = list(out.glob("testfleet_*_amd64.deb"))
    assert len(debs) == 1, list(out.iterdir())
    deb = debs[0]
    assert deb.name == f"testfleet_{project_version()}_amd64.deb"
    info = check(run(["dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends", "Maintainer"],
                     cwd=tmp_path), "dpkg-deb --field").stdout
    # Debian policy 5.6.2: "Name <address>".
    assert re.search(r"^Maintainer: [^<>\n]+ <[^@<>\s]+@[^@<>\s]+>$", info, re.M), info
    assert "Package: testfleet" in info and f"Version: {project_version()}" in info
    assert "Depends:" not in info, "the static package must depend on nothing"
    description = check(run(["dpkg-deb", "--field", deb, "Description"], cwd=tmp_path), "dpkg-deb --field").stdout
    assert "groups" in description and ";" not in description, description
    contents = check(run(["dpkg-deb", "--contents", deb], cwd=tmp_path), "dpkg-deb --contents").stdout
    assert "./usr/bin/testfleet" in contents and "./usr/share/man/man1/testfleet.1.gz" in contents
    assert "./usr/share/doc/testfleet/copyright" in contents, contents  # Debian policy 12.5

    images = check(docker_run("images", "--format", "{{.Repository}}:{{.Tag}}"), "docker images").stdout.split()
    if DEBIAN_IMAGE not in images:
        pytest.fail(f"{DEBIAN_IMAGE} is missing: scripts/docker-engine.sh start builds it")
    # Install, use, remove, and check that dpkg leaves none of the package's files behind.
    script = textwrap.dedent("""\
        set -e
        # The slim image tells dpkg to skip man pages and docs; a full Debian installs them: so do we.
        rm -f /etc/dpkg/dpkg.cfg.d/docker
        # Every path outside dpkg's own database and logs (and this script's /tmp), before and after.
        paths() { find / -xdev \\( -path /proc -o -path /tmp -o -path /pkg -o -path /var/lib/dpkg -o -path /var/log \\) \\
                    -prune -o -print | sort; }
        paths > /tmp/before
        dpkg -i /pkg/package.deb
        testfleet --version
        testfleet help plan | head -n 3
        test -x /usr/bin/testfleet
        test -s /usr/share/man/man1/testfleet.1.gz
        dpkg -L testfleet > /tmp/files
        dpkg -r testfleet
        dpkg --purge testfleet
        for f in $(cat /tmp/files); do [ -d "$f" ] || [ ! -e "$f" ] || { echo "left behind: $f"; exit 1; }; done
        paths > /tmp/after
        diff /tmp/before /tmp/after || { echo "paths differ after dpkg -r"; exit 1; }
        if dpkg -s testfleet 2>/dev/null | grep -q '^Status: install'; then echo "still installed"; exit 1; fi
        echo removed cleanly
        """)
    shutil.copy2(deb, out / "package.deb")
    result = docker_run("run", "--rm", "-v", f"{out}:/pkg:ro", DEBIAN_IMAGE, "sh", "-c", script, timeout=300)
    check(result, "dpkg -i / dpkg -r in a Debian container")
    assert f"testfleet {project_version()} (revision " in result.stdout
    assert "Usage: testfleet plan" in result.stdout
    assert result.stdout.strip().endswith("removed cleanly")


def test_wheel_puts_testfleet_on_the_path_of_a_fresh_venv(static_build, tmp_path):
    check(run(["cmake", "--build", static_build, "--target", "wheel"], cwd=REPO, timeout=600), "building the wheel")
    wheels = sorted((static_build / "dist").glob("testfleet-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert wheel.name.startswith(f"testfleet-{project_version()}-py3-none-manylinux_2_17_x86_64")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        binary = archive.getinfo(f"testfleet-{project_version()}.data/scripts/testfleet")
        assert (binary.external_attr >> 16) & 0o777 == 0o755
        record = archive.read(f"testfleet-{project_version()}.dist-info/RECORD").decode()
    assert all(name in record for name in names)

    venv = tmp_path / "venv"
    check(run(["/usr/bin/python3", "-m", "venv", venv], cwd=tmp_path, timeout=300), "python3 -m venv")
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check", "--no-input"]
    check(run(pip + ["install", "--no-index", wheel], cwd=tmp_path, timeout=300), "pip install --no-index")

    # Activated as a user would: the venv's bin first on PATH, and nothing else that has a testfleet.
    env = clean_env(PATH=f"{venv / 'bin'}:/usr/bin:/bin", VIRTUAL_ENV=venv)
    assert shutil.which("testfleet", path=env["PATH"]) == str(venv / "bin" / "testfleet")
    version = check(run(["testfleet", "--version"], cwd=tmp_path, env=env), "testfleet from the venv").stdout
    assert version.startswith(f"testfleet {project_version()} (revision ")
    shown = check(run(pip + ["show", "--files", "testfleet"], cwd=tmp_path), "pip show").stdout
    assert f"Version: {project_version()}" in shown

    check(run(pip + ["uninstall", "--yes", "testfleet"], cwd=tmp_path), "pip uninstall")
    assert not (venv / "bin" / "testfleet").exists()


def test_wheel_builder_refuses_a_dynamically_linked_binary(tmp_path):
    with pytest.raises(build_wheel.WheelError, match="dynamically linked"):
        build_wheel.build_wheel(Path("/bin/ls"), project_version(), tmp_path)
    assert list(tmp_path.iterdir()) == []
