#!/bin/sh
# Regenerates junit.xml: pytest's own report of a run interrupted by SIGINT (a Ctrl-C, a cancelled GitHub
# job) while its second test runs. pytest writes a testcase without a name for the interrupted test.
set -eu
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/project"
/usr/bin/python3 - <<'PYTHON'
import os, signal, subprocess, tempfile, time
started = os.path.join(tempfile.mkdtemp(), "started")
pytest = subprocess.Popen(["/usr/bin/python3", "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junit-xml=../junit.xml", "."],
                          env=dict(os.environ, STARTED_FILE=started), stdout=subprocess.DEVNULL)
while not os.path.exists(started):
    time.sleep(0.05)
pytest.send_signal(signal.SIGINT)
pytest.wait()
PYTHON
echo "now regenerate expected-merged.xml from junit.xml (see test_reports_junit.cpp)"
