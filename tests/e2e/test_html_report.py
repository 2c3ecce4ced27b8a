"""The HTML report: written by every `testfleet run` into the reports directory, made again by `testfleet report
DIR` (from a directory moved elsewhere, as a CI artifact is), and opened from disk by headless Chromium, which
must render every group and every failed test while the page asks the network for nothing."""

import json
import os
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser

import pytest

from conftest import PYTHON, copy_fixture, run

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium():
    """Debian's chromium (scripts/install-deps). In CI (or with TESTFLEET_REQUIRE_CHROMIUM) its absence fails."""
    path = shutil.which("chromium")
    if path is None:
        message = "chromium is not installed: apt-get install -y chromium (scripts/install-deps)"
        if os.environ.get("CI") or os.environ.get("TESTFLEET_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def chromium(tmp_path, name, *args):
    """Runs headless Chromium with a new empty profile; returns its stdout."""
    profile = tmp_path / f"profile-{name}"
    profile.mkdir()
    result = subprocess.run([require_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def page_requests(netlog):
    """URLs a page asked for, from a Chromium net log: the browser's own requests have no origin."""
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [event["params"]["url"] for event in log["events"]
            if event["type"] == start_job and "url" in event.get("params", {})
            and event["params"].get("initiator") != "not an origin"]


class Page(HTMLParser):
    """The text a reader sees (styles left out), and every tag with its attributes."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.text, self.tags, self._in_style = [], [], False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if not self._in_style:
            self.text.append(data)

    def joined(self):
        return "".join(self.text)


def failed_cases(junit):
    root = ET.parse(junit).getroot()
    return [(case.get("classname", ""), case.get("name", "")) for case in root.iter("testcase")
            if case.find("failure") is not None or case.find("error") is not None]


def png_size_and_colours(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pixels, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            pixels += data[at + 8:at + 8 + length]
        at += 12 + length
    return width, height, len(set(zlib.decompress(pixels)))


@pytest.fixture(scope="module")
def finished_run(testfleet, tmp_path_factory):
    project = copy_fixture("basic", tmp_path_factory.mktemp("report"))
    result = run([testfleet, "run", "-n", "3", "--", PYTHON, "-m", "pytest", "--junit-xml=unit.xml", "tests"],
                 cwd=project)
    assert result.returncode == 1, result.stdout + result.stderr
    return project, result


def test_every_run_writes_the_report(finished_run):
    project, result = finished_run
    report = project / "testfleet-reports" / "report.html"
    assert report.is_file()
    assert f"report: {report}" in result.stdout.splitlines()


def test_report_is_made_again_from_a_moved_directory(testfleet, finished_run, tmp_path):
    project, _ = finished_run
    artifact = tmp_path / "downloaded artifact"
    shutil.copytree(project / "testfleet-reports", artifact)
    (artifact / "report.html").unlink()
    result = run([testfleet, "report", artifact], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(artifact / "report.html")
    rebuilt = (artifact / "report.html").read_text()
    original = (project / "testfleet-reports" / "report.html").read_text()
    # The same page but for where the logs now are and its footer (where and when it was made).
    assert (rebuilt.split("<footer>")[0].replace(str(artifact), str(project / "testfleet-reports")) ==
            original.split("<footer>")[0])
    # Logs are linked relative to the page, so the links work wherever the directory goes.
    hrefs = [attrs["href"] for tag, attrs in Page(rebuilt).tags if tag == "a" and "href" in attrs]
    assert "group-1/output.log" in hrefs
    assert all(h.startswith("#") or (artifact / h).is_file() for h in hrefs), hrefs


def test_report_of_a_directory_without_a_run(testfleet, tmp_path):
    result = run([testfleet, "report", tmp_path], cwd=tmp_path)
    assert result.returncode == 2
    assert "run.json" in result.stderr
    assert not (tmp_path / "report.html").exists()


def test_chromium_shows_every_group_and_failure_and_fetches_nothing(finished_run, tmp_path):
    project, _ = finished_run
    report = project / "testfleet-reports" / "report.html"
    html = report.read_text()
    record = json.loads((project / "testfleet-reports" / "run.json").read_text())

    # Nothing in the file could be fetched: no URL in any attribute (test output may mention one as text), no
    # element that loads anything, no url() in the styles, and a policy that would block a fetch anyway.
    page = Page(html)
    assert not [tag for tag, _ in page.tags if tag in ("script", "link", "img", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for name in ("href", "src", "action", "srcset"):
            value = attrs.get(name)
            assert value is None or value.startswith("#") or ":" not in value.split("/")[0], (tag, attrs)
        assert not [value for value in attrs.values() if value and ("http:" in value or "https:" in value)], attrs
        assert "url(" not in attrs.get("style", "")
    styles = html.split("<style>")[1].split("</style>")[0]
    assert "url(" not in styles and "@import" not in styles
    policies = [attrs["content"] for tag, attrs in page.tags
                if tag == "meta" and attrs.get("http-equiv") == "Content-Security-Policy"]
    assert policies and policies[0].startswith("default-src 'none'")

    # The net log detector sees a page's requests: a page that does fetch shows them...
    control = tmp_path / "control.html"
    control.write_text('<!DOCTYPE html><p>control</p><img src="http://127.0.0.1:9/pixel.png">')
    chromium(tmp_path, "control", f"--log-net-log={tmp_path / 'control.json'}", "--dump-dom", control.as_uri())
    assert page_requests(tmp_path / "control.json") == ["http://127.0.0.1:9/pixel.png"]
    # ...and the report shows none.
    dom = chromium(tmp_path, "dom", f"--log-net-log={tmp_path / 'report.json'}", "--dump-dom", report.as_uri())
    assert page_requests(tmp_path / "report.json") == []

    # What the browser built names the run, every group and every failed test of the merged JUnit.
    text = Page(dom).joined()
    assert record["run_id"] in text
    for group in record["groups"]:
        assert f"group {group['group']}" in text
    failed = failed_cases(project / "unit.xml")
    assert len(failed) == 11  # 7 failures and 4 errors in the basic fixture
    for classname, name in failed:
        assert name in text, name
        assert classname in text, classname

    # And it draws: a screenshot of the window's size that is not a blank page.
    shot = tmp_path / "report.png"
    chromium(tmp_path, "shot", "--window-size=1400,1800", f"--screenshot={shot}", report.as_uri())
    width, height, colours = png_size_and_colours(shot)
    assert (width, height) == (1400, 1800)
    assert colours > 50
