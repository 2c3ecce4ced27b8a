# Fixture tests that fail on purpose: a pytest run from above must not collect them.
collect_ignore = ["project"]
