"""Live progress of `testfleet run` on a real terminal: tmux renders what a user would see (the status area
redrawn in place, a failed group's output printed above it, nothing of the area left at the end), a bare
pseudo-terminal shows the bytes (every redraw climbs exactly over the previous area, no line wider than the
terminal, no area taller than the screen), and a pipe gets plain lines only."""

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from conftest import PYTHON, clean_env, copy_fixture, run

GROUP_LINE = re.compile(r"^  worker +(\d+) \[[#.]{20}\] ")
TOTAL_LINE = re.compile(r"^testfleet: (\d+)/(\d+) workers done, (\d+)/(\d+) tests, ")
MORE_LINE = re.compile(r"^  \u2026 \d+ more workers: ")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def is_status(line):
    return bool(GROUP_LINE.match(line) or TOTAL_LINE.match(line) or MORE_LINE.match(line))


def env_without_ci():
    env = clean_env()
    # In CI testfleet prints plain lines whatever the terminal: these tests are about the terminal.
    for name in ("CI", "NO_COLOR", "CLICOLOR_FORCE"):
        env.pop(name, None)
    return env


class Tmux:
    """A private tmux server whose one pane runs a command and stays after it exits."""

    def __init__(self, directory, columns, rows):
        self.socket = str(directory / "tmux.sock")
        config = directory / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g history-limit 100000\nset -g status off\n")
        self.base = ["tmux", "-S", self.socket, "-f", str(config)]
        self.status_file = directory / "pane-exit-status"
        self.columns, self.rows = columns, rows

    def tmux(self, *args):
        result = subprocess.run(self.base + list(args), capture_output=True, text=True, env=env_without_ci(),
                                timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, argv):
        """Runs argv in the pane; a shell inside the pane writes its exit status to a file when it ends.

        The file, not tmux's #{pane_dead}, says when the run is over: the shell reaps the run itself, while tmux
        has to notice its pane's end; in one CI run it never did, and the test waited 300 s for a zombie pane."""
        self.status_file.unlink(missing_ok=True)
        command = shlex.join(["sh", "-c", '"$@"; echo $? > "$0.tmp" && mv "$0.tmp" "$0"', str(self.status_file)]
                             + list(argv))
        self.tmux("new-session", "-d", "-s", "run", "-x", str(self.columns), "-y", str(self.rows), command)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "run").split("\n")

    def history(self):
        # -J joins lines the terminal wrapped, so a line too wide for it shows as one long line.
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "run").split("\n")

    def exit_status(self):
        """The command's exit status (128 + the signal that killed it, as a shell says); None while it runs."""
        try:
            return int(self.status_file.read_text())
        except FileNotFoundError:
            return None

    def describe_pane_process(self):
        """What the pane's processes are doing, and which signals tmux blocks: for a run that does not end."""
        pid = self.tmux("display-message", "-p", "-t", "run", "#{pane_pid}").strip()
        lines = [f"pane pid {pid}"]
        for task in sorted(Path(f"/proc/{pid}/task").glob("*")) if pid.isdigit() else []:
            try:
                lines.append(f"  thread {task.name}: {(task / 'stat').read_text().split()[2]} "
                             f"wchan={(task / 'wchan').read_text()}")
            except OSError:
                pass
        try:
            server = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            blocked = [line for line in Path(f"/proc/{server}/status").read_text().splitlines()
                       if line.startswith(("SigBlk", "SigIgn"))]
            lines.append(f"tmux server {server}: " + ", ".join(blocked))
        except (OSError, IndexError):
            pass
        return "\n".join(lines)

    def kill(self):
        subprocess.run(self.base + ["kill-server"], capture_output=True, timeout=30)


def check_area(screen, groups, columns):
    """The status area on a screen: the last non-empty lines, a line per group then the total, nothing below."""
    lines = [line.rstrip() for line in screen]
    while lines and not lines[-1]:
        lines.pop()
    totals = [i for i, line in enumerate(lines) if TOTAL_LINE.match(line)]
    assert len(totals) == 1, "\n".join(lines)
    assert totals[0] == len(lines) - 1, "\n".join(lines)
    area = lines[-1 - groups:-1]
    assert [int(GROUP_LINE.match(line).group(1)) for line in area] == list(range(1, groups + 1)), "\n".join(lines)
    for line in area + [lines[-1]]:
        assert len(line) < columns, line
    assert not any(is_status(line) for line in lines[:-1 - groups]), "\n".join(lines)
    return lines[-1]


def test_status_area_redraws_in_place_and_failed_output_comes_above_it(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    columns, rows = 120, 40
    tmux = Tmux(tmp_path, columns, rows)
    command = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(project), testfleet, "run", "-n", "3", "--",
               PYTHON, "-m", "pytest", "--junit-xml=unit.xml", "tests"]
    try:
        tmux.start(command)
        frames = []
        deadline = time.monotonic() + 300
        while (status := tmux.exit_status()) is None:
            assert time.monotonic() < deadline, "\n".join(tmux.screen() + [tmux.describe_pane_process()])
            screen = tmux.screen()
            if any(TOTAL_LINE.match(line) for line in screen) and tmux.exit_status() is None:
                frames.append(check_area(screen, 3, columns))
            time.sleep(0.1)
        history = [line.rstrip() for line in tmux.history()]
    finally:
        tmux.kill()

    assert status == 1, "\n".join(history)
    # Drawn again and again while the groups ran...
    assert len(set(frames)) >= 3, frames
    # ...always in the same place: none of it is left in the scrollback, where every frame would be if the
    # area were printed rather than redrawn.
    assert not [line for line in history if is_status(line)], "\n".join(history)

    record = json.loads((project / "testfleet-reports" / "run.json").read_text())
    failed = [g for g in record["groups"] if g["status"] != "exit 0"]
    assert failed, record
    summary = next(i for i, line in enumerate(history) if line.startswith("testfleet: 335 tests"))
    for group in failed:
        index = group["group"]
        header = next(i for i, line in enumerate(history) if line.startswith(f"FAILED: worker {index} [exit 1]"))
        assert header < summary
        assert history[header + 1] == shlex.join(group["command"])
        # The group's whole output follows, in order, undisturbed by any redraw.
        block = history[header + 2:summary]
        log = (project / "testfleet-reports" / f"group-{index}" / "output.log").read_text(errors="replace")
        expected = [line.rstrip() for line in log.splitlines() if line.isascii() and line.isprintable()]
        position = 0
        for line in expected:
            try:
                position = block.index(line, position) + 1
            except ValueError:
                raise AssertionError(f"group {index}'s output line {line!r} is not in its block:\n" + "\n".join(block))


def read_pty(master, process, timeout=300):
    output = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal side is closed, the run is over
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=max(1, deadline - time.monotonic()))
    return output.decode("utf-8", errors="replace")


def test_every_redraw_climbs_over_the_previous_area_only(testfleet, tmp_path):
    """A terminal 64 columns wide and 8 rows high; six groups do not fit, so some give way to a summary line."""
    import fcntl
    import struct
    import termios

    project = copy_fixture("basic", tmp_path)
    columns, rows = 64, 8
    master, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = env_without_ci()
    env["TERM"] = "xterm-256color"
    process = subprocess.Popen([testfleet, "run", "-n", "6", "--", PYTHON, "-m", "pytest", "--junit-xml=unit.xml",
                                "tests"], cwd=project, env=env, stdin=terminal, stdout=terminal, stderr=terminal,
                               start_new_session=True)
    os.close(terminal)
    try:
        output = read_pty(master, process)
    finally:
        os.close(master)
    assert process.returncode == 1, output[-3000:]

    erase = re.compile(r"\r\x1b\[(\d+)A\x1b\[J")
    erases = list(erase.finditer(output))
    assert len(erases) >= 5, output[-3000:]
    saw_summary = False
    merging_areas = []
    previous_end = 0
    for match in erases:
        climbed = int(match.group(1))
        assert 1 <= climbed <= rows - 2
        # What was written since the last climb: perhaps lines printed above the area, then the area.
        written = ANSI.sub("", output[previous_end:match.start()]).split("\r\n")
        previous_end = match.end()
        assert written[-1] == "", repr(written[-3:])
        area = written[-1 - climbed:-1]
        # The climb covers exactly the area: status lines ending with the total, and none above them.
        assert all(is_status(line) for line in area), area
        assert TOTAL_LINE.match(area[-1]), area
        assert not any(is_status(line) for line in written[:-1 - climbed]), written
        for line in area:
            assert len(line) <= columns - 1, line
        saw_summary |= any(MORE_LINE.match(line) for line in area)
        if any(GROUP_LINE.match(line) and " merging " in line for line in area):
            merging_areas.append(area)
    assert saw_summary
    # Once every group ended, the area says its reports are being merged, each group with how it ended.
    assert merging_areas, "the status area never showed the merge"
    for area in merging_areas:
        assert TOTAL_LINE.match(area[-1]).group(1) == "6", area
        groups = [line for line in area if GROUP_LINE.match(line)]
        assert all(" merging " in line for line in groups), area
        hidden = [line for line in area if MORE_LINE.match(line)]
        assert all(re.search(r": \d+ merging$", line) for line in hidden), area
    # Cleared at the end: nothing of the area after the last climb.
    tail = ANSI.sub("", output[erases[-1].end():]).split("\r\n")
    assert not any(is_status(line) for line in tail), tail
    assert any(line.startswith("testfleet: 335 tests") for line in tail), tail


def test_plain_lines_without_a_terminal(testfleet, tmp_path):
    project = copy_fixture("basic", tmp_path)
    result = run([testfleet, "run", "-n", "3", "--", PYTHON, "-m", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project, env=env_without_ci())
    assert result.returncode == 1, result.stdout + result.stderr
    # No redraws and no colour of testfleet's own (a test's output may hold escape codes: it is passed on).
    assert not re.search(r"\x1b\[\d*[AJK]", result.stdout)
    lines = result.stdout.splitlines()
    assert any(line.startswith("FAILED: worker ") for line in lines), result.stdout
    for index in (1, 2, 3):
        assert sum(line.startswith(f"worker {index} ready in ") for line in lines) == 1, result.stdout
        ends = [line for line in lines if line.startswith((f"worker {index} passed", f"FAILED: worker {index} ["))]
        assert len(ends) == 1, result.stdout
