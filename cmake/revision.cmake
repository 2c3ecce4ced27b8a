# Run at every build (cmake -P): writes the git revision into OUTPUT as TESTFLEET_REVISION, touching the file
# only when the revision changed, so that `testfleet --version` names the commit it was built from without
# recompiling anything when it did not change. Outside a git checkout the revision is "unknown".
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY "${SOURCE_DIR}"
                OUTPUT_VARIABLE revision OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT revision)
  set(revision "unknown")
endif()
set(content "#pragma once\n#define TESTFLEET_REVISION \"${revision}\"\n")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
endif()
if(NOT "${previous}" STREQUAL "${content}")
  file(WRITE "${OUTPUT}" "${content}")
endif()
