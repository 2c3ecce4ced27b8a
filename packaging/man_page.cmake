# Renders testfleet.1.gz by asking the freshly built binary for its own manual (`testfleet help --man`), so
# the page cannot drift from the options the binary accepts. Run by cmake/packaging.cmake at build time:
#   cmake -DTESTFLEET=<binary> -DOUTPUT=<dir>/testfleet.1.gz -P packaging/man_page.cmake
# gzip -n leaves the name and time out of the header: the same binary gives the same bytes.

foreach(required TESTFLEET OUTPUT)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "man_page.cmake: -D${required}=... is required")
  endif()
endforeach()

get_filename_component(directory "${OUTPUT}" DIRECTORY)
file(MAKE_DIRECTORY "${directory}")
set(page "${directory}/testfleet.1")
execute_process(COMMAND "${TESTFLEET}" help --man OUTPUT_FILE "${page}" ERROR_VARIABLE errors RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "`${TESTFLEET} help --man` failed (${status}): ${errors}")
endif()
file(SIZE "${page}" size)
if(size EQUAL 0)
  message(FATAL_ERROR "`${TESTFLEET} help --man` printed nothing")
endif()
execute_process(COMMAND gzip -9 -n -c INPUT_FILE "${page}" OUTPUT_FILE "${OUTPUT}" RESULT_VARIABLE status)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "gzip of ${page} failed (${status})")
endif()
