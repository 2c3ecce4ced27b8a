#!/bin/sh
# Regenerates the real pytest fixtures: the whole run, and the same run split in two parts by file.
set -eu
export PYTHONDONTWRITEBYTECODE=1
cd "$(dirname "$0")/project"
/usr/bin/python3 -m pytest -p no:cacheprovider -q -o junit_logging=all --junit-xml=../whole.xml . >/dev/null || true
/usr/bin/python3 -m pytest -p no:cacheprovider -q -o junit_logging=all --junit-xml=../part-1.xml test_alpha.py >/dev/null || true
/usr/bin/python3 -m pytest -p no:cacheprovider -q -o junit_logging=all --junit-xml=../part-2.xml test_beta.py >/dev/null || true
echo "now regenerate expected-merged.xml from part-1.xml and part-2.xml (see test_reports_junit.cpp)"
