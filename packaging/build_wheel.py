#!/usr/bin/env python3
"""Builds a Python wheel that carries the static testfleet binary, for `pip install testfleet-*.whl`.

The binary goes into the wheel's `<name>-<version>.data/scripts/` directory: pip copies what is there into
the environment's bin/ (a virtualenv's, or ~/.local/bin with --user), keeping the executable bit recorded
in the zip entry, so `testfleet` is on PATH as soon as the environment is. No Python code runs at start-up.

Only a fully static binary is accepted: it needs nothing from the machine, which is what lets the wheel
claim every manylinux and musllinux platform of its architecture. The wheel is written with zipfile and
the metadata of the wheel specification (PEP 427, PEP 491, core metadata 2.1) by hand, so nothing beyond
Python's standard library is needed, and it is byte-for-byte reproducible: fixed entry times and order.

    packaging/build_wheel.py --binary build-static/testfleet --version 0.1.0 --out dist/
"""

import argparse
import base64
import hashlib
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

NAME = "testfleet"
SUMMARY = "Runs a slow test suite in parallel groups, each in its own isolated environment"
# The oldest platform tags that the static binary satisfies: glibc and musl are not used at all, the
# kernel floor (3.2 for glibc 2.36's start-up code) is below every one of these platforms'.
PLATFORMS = {
    "x86_64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "musllinux_1_1_x86_64"],
    "aarch64": ["manylinux_2_17_aarch64", "manylinux2014_aarch64", "musllinux_1_1_aarch64"],
}
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
PT_INTERP = 3
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class WheelError(Exception):
    pass


def static_elf_architecture(data: bytes, path: Path) -> str:
    """The architecture of a 64-bit little-endian ELF executable with no program interpreter."""
    if data[:4] != b"\x7fELF":
        raise WheelError(f"{path} is not an ELF executable")
    if data[4] != 2 or data[5] != 1:
        raise WheelError(f"{path} is not a 64-bit little-endian ELF file")
    machine = struct.unpack_from("<H", data, 18)[0]
    arch = ELF_MACHINES.get(machine)
    if arch is None:
        raise WheelError(f"{path}: ELF machine {machine} is not one this wheel builder knows")
    phoff = struct.unpack_from("<Q", data, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    for i in range(phnum):
        p_type = struct.unpack_from("<I", data, phoff + i * phentsize)[0]
        if p_type == PT_INTERP:
            raise WheelError(f"{path} is dynamically linked (it has a program interpreter): build it with "
                             "`cmake --preset static` so that the wheel runs on any Linux")
    return arch


def record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def metadata(version: str, readme: str) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {NAME}",
        f"Version: {version}",
        f"Summary: {SUMMARY}",
        "License: MIT",
        "Keywords: testing,pytest,parallel,ci,docker-compose,junit,coverage",
        "Classifier: License :: OSI Approved :: MIT License",
        "Classifier: Environment :: Console",
        "Classifier: Operating System :: POSIX :: Linux",
        "Classifier: Topic :: Software Development :: Testing",
    ]
    if readme:
        lines.append("Description-Content-Type: text/markdown")
        return "\n".join(lines) + "\n\n" + readme
    return "\n".join(lines) + "\n"


def wheel_file(tags: list) -> str:
    lines = ["Wheel-Version: 1.0", "Generator: testfleet packaging/build_wheel.py", "Root-Is-Purelib: false"]
    lines += [f"Tag: {tag}" for tag in tags]
    return "\n".join(lines) + "\n"


def add_entry(archive: zipfile.ZipFile, name: str, data: bytes, mode: int, records: list) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100000 | mode) << 16  # a regular file with these permission bits
    archive.writestr(info, data, compresslevel=9)
    records.append(f"{name},{record_hash(data)},{len(data)}")


def build_wheel(binary: Path, version: str, out_dir: Path, readme_path: Path = None) -> Path:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*([a-z]+[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?", version):
        raise WheelError(f"version {version!r} is not a PEP 440 release version such as 0.1.0")
    try:
        data = binary.read_bytes()
    except OSError as e:
        raise WheelError(f"cannot read the binary {binary}: {e.strerror}") from e
    arch = static_elf_architecture(data, binary)
    # The binary must be the version the wheel says it is.
    answer = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    if answer.returncode != 0 or f" {version} " not in f" {answer.stdout.strip()} ":
        raise WheelError(f"`{binary} --version` says {answer.stdout.strip() or answer.stderr.strip()!r}, "
                         f"not version {version}")
    readme = readme_path.read_text(encoding="utf-8") if readme_path else ""

    platforms = PLATFORMS[arch]
    tags = [f"py3-none-{platform}" for platform in platforms]
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel_path = out_dir / f"{NAME}-{version}-py3-none-{'.'.join(platforms)}.whl"
    dist_info = f"{NAME}-{version}.dist-info"
    records = []
    partial = wheel_path.with_name(wheel_path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        add_entry(archive, f"{NAME}-{version}.data/scripts/{NAME}", data, 0o755, records)
        add_entry(archive, f"{dist_info}/METADATA", metadata(version, readme).encode(), 0o644, records)
        add_entry(archive, f"{dist_info}/WHEEL", wheel_file(tags).encode(), 0o644, records)
        records.append(f"{dist_info}/RECORD,,")
        record_info = zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=ZIP_TIME)
        record_info.compress_type = zipfile.ZIP_DEFLATED
        record_info.external_attr = (0o100000 | 0o644) << 16
        archive.writestr(record_info, "\n".join(records) + "\n")
    partial.replace(wheel_path)
    return wheel_path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=Path, required=True, help="the static testfleet to ship")
    parser.add_argument("--version", required=True, help="the package version (the project's)")
    parser.add_argument("--out", type=Path, required=True, help="directory for the .whl")
    parser.add_argument("--readme", type=Path, help="README.md, the long description pip shows")
    args = parser.parse_args(argv)
    try:
        print(build_wheel(args.binary, args.version, args.out, args.readme))
    except WheelError as e:
        print(f"build_wheel: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
