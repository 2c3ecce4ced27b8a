# What `cmake --install`, `cpack` and the `wheel` target ship, and the man page they all carry.
#
#   cmake --install build --prefix /opt/testfleet [--strip]   bin/testfleet, share/man/man1/testfleet.1.gz
#   cpack --config build/CPackConfig.cmake -B dist             testfleet_<version>_amd64.deb and a .tar.gz
#   cmake --build build --target wheel                         testfleet-<version>-py3-none-<platform>.whl
#
# The packages for users come from the static build (`cmake --preset static`, scripts/package): one file
# that needs nothing from the machine, so the .deb has no dependencies and the wheel can honestly claim
# every glibc and musl platform. A .deb made from a normal build depends on the shared libraries it links
# (computed by dpkg-shlibdeps); no wheel is made from a normal build, since pip could install it on a
# machine without those libraries.
#
# Include this after the testfleet target is defined.

include(GNUInstallDirs)

install(TARGETS testfleet RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The man page, rendered by the binary itself (packaging/man_page.cmake): every build has it, so
# `cmake --install` of any build installs a page that matches the binary.
set(TESTFLEET_MAN_PAGE ${PROJECT_BINARY_DIR}/man/testfleet.1.gz)
add_custom_command(OUTPUT ${TESTFLEET_MAN_PAGE}
                   COMMAND ${CMAKE_COMMAND} -DTESTFLEET=$<TARGET_FILE:testfleet> -DOUTPUT=${TESTFLEET_MAN_PAGE}
                           -P ${PROJECT_SOURCE_DIR}/packaging/man_page.cmake
                   DEPENDS testfleet ${PROJECT_SOURCE_DIR}/packaging/man_page.cmake
                   COMMENT "Rendering the man page from testfleet help --man"
                   VERBATIM)
add_custom_target(testfleet_man ALL DEPENDS ${TESTFLEET_MAN_PAGE})
install(FILES ${TESTFLEET_MAN_PAGE} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Debian's place for the licence: /usr/share/doc/<package>/copyright.
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

if(TESTFLEET_STATIC)
  find_program(TESTFLEET_WHEEL_PYTHON NAMES python3 REQUIRED)
  set(TESTFLEET_DIST_DIR ${PROJECT_BINARY_DIR}/dist CACHE PATH "Where the wheel target writes the wheel")
  add_custom_target(wheel
                    COMMAND ${TESTFLEET_WHEEL_PYTHON} ${PROJECT_SOURCE_DIR}/packaging/build_wheel.py
                            --binary $<TARGET_FILE:testfleet> --version ${PROJECT_VERSION}
                            --readme ${PROJECT_SOURCE_DIR}/README.md --out ${TESTFLEET_DIST_DIR}
                    DEPENDS testfleet
                    COMMENT "Building the Python wheel that carries the static testfleet"
                    VERBATIM)
endif()

set(CPACK_PACKAGE_NAME testfleet)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "Runs a slow test suite in parallel groups, each in its own isolated environment")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
    "testfleet splits a test suite (pytest, or any runner that can list its tests) into groups balanced by "
    "past durations, runs every group in its own environment (its own PostgreSQL and Redis processes, or its "
    "own docker compose project), supervises them, and merges their JUnit XML and coverage into one report.")
# Debian's form "Name <address>": the address the project's maintainers commit with.
set(TESTFLEET_DEB_MAINTAINER "testfleet maintainers <maintainers@users.noreply.r-seed-c8247dde.example>"
    CACHE STRING "The Maintainer field of the .deb")
set(CPACK_RESOURCE_FILE_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGE_CONTACT "${TESTFLEET_DEB_MAINTAINER}")
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR TGZ DEB)
set(CPACK_SYSTEM_NAME linux-${CMAKE_SYSTEM_PROCESSOR})
set(CPACK_ARCHIVE_COMPONENT_INSTALL OFF)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "docker.io | docker-ce, docker-compose, postgresql, redis-server, python3-pytest")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
if(TESTFLEET_STATIC)
  set(CPACK_DEBIAN_PACKAGE_DEPENDS "")
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)
else()
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()

include(CPack)
