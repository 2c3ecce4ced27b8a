# Measured by tests/unit/test_reports_cobertura.cpp in parts (coverage.py): a pytest run from above must not collect it.
collect_ignore = ["project"]
