# The shipped testfleet: one fully static x86_64 Linux file (`cmake --preset static`, or
# -DTESTFLEET_STATIC=ON). It runs where nothing else is installed — a busybox or distroless image, a CI
# runner of any distribution — because it needs no libc, libstdc++ or Python of the machine.
#
# Three things differ from the normal build, each for a reason the linker would not tell:
# - A statically linked glibc still dlopen()s NSS modules for getaddrinfo(), from whatever glibc the
#   machine has: none in a minimal container, another version elsewhere (which can crash). TESTFLEET_STATIC
#   is defined for every target so that util/net.cpp leaves getaddrinfo() out and resolves names by itself
#   (numeric, /etc/hosts, DNS over UDP to the nameservers of /etc/resolv.conf, as Docker's embedded DNS
#   answers compose service names).
# - Debian ships fmt and toml++ as shared libraries only: every target uses their header-only modes instead.
# - The yaml-cpp and pugixml packages' CMake files name their shared libraries: their static archives,
#   which the same packages ship, are linked instead.
# The binary is linked stripped and with unused sections dropped: the goal is a file under 5 MB.
#
# Include this after the last target is defined (it rewrites the link lines of the targets it finds).

option(TESTFLEET_STATIC "Link testfleet fully statically: no shared library needed at run time" OFF)
if(NOT TESTFLEET_STATIC)
  return()
endif()

if(NOT CMAKE_SYSTEM_NAME STREQUAL "Linux")
  message(FATAL_ERROR "TESTFLEET_STATIC: a fully static binary is supported on Linux only")
endif()
if(TESTFLEET_SANITIZE)
  message(FATAL_ERROR "TESTFLEET_STATIC and TESTFLEET_SANITIZE do not go together: the sanitizers' runtimes are "
                      "shared libraries")
endif()

# A static archive of the libraries that were found as shared ones; fails at configure time, naming the
# package that ships it, rather than at link time with "attempted static link of dynamic object".
function(testfleet_static_archive out_target name package)
  find_library(TESTFLEET_STATIC_${name}_ARCHIVE NAMES lib${name}.a)
  if(NOT TESTFLEET_STATIC_${name}_ARCHIVE)
    message(FATAL_ERROR "TESTFLEET_STATIC: lib${name}.a not found (it comes with Debian's ${package})")
  endif()
  add_library(${out_target} STATIC IMPORTED)
  set_target_properties(${out_target} PROPERTIES IMPORTED_LOCATION "${TESTFLEET_STATIC_${name}_ARCHIVE}")
  if(TARGET ${name})
    get_target_property(includes ${name} INTERFACE_INCLUDE_DIRECTORIES)
    if(includes)
      set_target_properties(${out_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${includes}")
    endif()
  endif()
endfunction()

testfleet_static_archive(testfleet_static_yaml_cpp yaml-cpp libyaml-cpp-dev)

# toml++'s package config names libtomlplusplus.so and says TOML_HEADER_ONLY=0; its headers carry the
# whole implementation too.
add_library(testfleet_static_tomlplusplus INTERFACE IMPORTED)
get_target_property(testfleet_toml_includes tomlplusplus::tomlplusplus INTERFACE_INCLUDE_DIRECTORIES)
set_target_properties(testfleet_static_tomlplusplus PROPERTIES
                      INTERFACE_INCLUDE_DIRECTORIES "${testfleet_toml_includes}"
                      INTERFACE_COMPILE_DEFINITIONS "TOML_HEADER_ONLY=1")

# Which imported library stands for which in the static build.
set(testfleet_static_swaps
    "fmt::fmt=fmt::fmt-header-only"
    "yaml-cpp=testfleet_static_yaml_cpp"
    "pugixml::pugixml=pugixml::static"
    "pugixml::shared=pugixml::static"
    "tomlplusplus::tomlplusplus=testfleet_static_tomlplusplus")

function(testfleet_static_swap_links target property)
  get_target_property(links ${target} ${property})
  if(NOT links)
    return()
  endif()
  set(swapped "")
  foreach(item IN LISTS links)
    foreach(swap IN LISTS testfleet_static_swaps)
      string(REPLACE "=" ";" pair "${swap}")
      list(GET pair 0 from)
      list(GET pair 1 to)
      if(item STREQUAL from)
        set(item ${to})
      elseif(item STREQUAL "$<LINK_ONLY:${from}>")
        set(item "$<LINK_ONLY:${to}>")
      endif()
    endforeach()
    list(APPEND swapped "${item}")
  endforeach()
  set_target_properties(${target} PROPERTIES ${property} "${swapped}")
endfunction()

get_property(testfleet_static_targets DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY BUILDSYSTEM_TARGETS)
foreach(target ${testfleet_static_targets})
  get_target_property(type ${target} TYPE)
  if(NOT type STREQUAL "INTERFACE_LIBRARY")
    testfleet_static_swap_links(${target} LINK_LIBRARIES)
  endif()
  testfleet_static_swap_links(${target} INTERFACE_LINK_LIBRARIES)
endforeach()

target_compile_definitions(testfleet_standard_settings INTERFACE TESTFLEET_STATIC=1)
# Size: every function and object in its own section, so that --gc-sections drops what nothing calls; and
# -O2 rather than Release's -O3 (it comes later on the command line, so it wins): 8% smaller, and no
# slower at planning a million tests.
set(TESTFLEET_STATIC_OPTIMIZE -O2 CACHE STRING "The static build's optimisation flag")
target_compile_options(testfleet_standard_settings INTERFACE -ffunction-sections -fdata-sections
                       $<$<CONFIG:Release>:${TESTFLEET_STATIC_OPTIMIZE}>)

# -static-pie rather than -static, for start-up time (and ASLR): a -static link starts with crtbeginT.o,
# which registers .eh_frame with libgcc's unwinder, and the first exception thrown (CLI11 throws one for
# --version and --help) then sorts every frame description of the binary: 1.4 ms of a 2 ms `--version`.
# A static PIE finds frames through PT_GNU_EH_FRAME's sorted table, like a dynamic binary.
include(CheckCXXSourceCompiles)
set(CMAKE_REQUIRED_LINK_OPTIONS -static-pie)
check_cxx_source_compiles("int main() { return 0; }" TESTFLEET_HAVE_STATIC_PIE)
unset(CMAKE_REQUIRED_LINK_OPTIONS)
if(TESTFLEET_HAVE_STATIC_PIE)
  foreach(target ${testfleet_static_targets})
    get_target_property(type ${target} TYPE)
    if(type STREQUAL "STATIC_LIBRARY" OR type STREQUAL "EXECUTABLE")
      set_property(TARGET ${target} PROPERTY POSITION_INDEPENDENT_CODE ON)
    endif()
  endforeach()
  target_link_options(testfleet PRIVATE -static-pie -Wl,--gc-sections -s)
else()
  message(WARNING "TESTFLEET_STATIC: this toolchain cannot link -static-pie; linking -static (every first "
                  "exception, such as --version's, then costs about a millisecond more)")
  target_link_options(testfleet PRIVATE -static -Wl,--gc-sections -s)
endif()
