"""BENCHMARKS.md holds one section per benchmark script, between markers, so that each script rewrites its
own figures and leaves the others' alone."""

import os
import platform


def replace_section(path, name, section):
    """Replaces the section `name` of `path` (between `<!-- name:start -->` and `<!-- name:end -->`), or
    appends it; written through a temporary file, so a killed run never leaves half a file."""
    start_marker, end_marker = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as current:
            text = current.read()
    block = f"{start_marker}\n{section.rstrip()}\n{end_marker}"
    start, end = text.find(start_marker), text.find(end_marker)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(end_marker):]
    elif text:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = "# Benchmarks\n\n" + block + "\n"
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)


def _first_value(path, prefix, separator):
    """The value of the first line of `path` that starts with `prefix`, or None."""
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.startswith(prefix):
                    return line.split(separator, 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def machine_description():
    """'AMD EPYC, 2 logical CPUs, Debian GNU/Linux 12 (bookworm)': what every section says it ran on."""
    cpu = _first_value("/proc/cpuinfo", "model name", ":") or platform.machine()
    system = _first_value("/etc/os-release", "PRETTY_NAME=", "=") or platform.platform()
    return f"{cpu}, {os.cpu_count()} logical CPUs, {system}"


def load_at_start():
    """', load average 0.52 0.61 0.70 at start'."""
    return ", load average " + " ".join(f"{value:.2f}" for value in os.getloadavg()) + " at start"
