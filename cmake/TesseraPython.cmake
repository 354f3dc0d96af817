# TESSERA_PYTHON=AUTO|ON|OFF -> TESSERA_HAVE_PYTHON: the Python package (python/tessera,
# docs/python.md) is built when the Python headers and pybind11 (Debian: python3-dev,
# pybind11-dev) are found; ON makes a missing piece a configure error.
#
# The interpreter is Debian's /usr/bin/python3 unless Python3_EXECUTABLE says otherwise:
# that is the one python3-torch installs into (a pyenv or venv python3 earlier in PATH
# would build a module torch cannot be imported next to).
#
# The extension is a shared module linking our static libraries, so with the package on
# every target is compiled as position-independent code.
#
# A sanitizer build leaves the package out under AUTO: the interpreter would need the
# sanitizer's runtime preloaded (ON with a sanitizer is an error).
set(TESSERA_HAVE_PYTHON OFF)
set(TESSERA_PYTHON_MISSING "")  # what AUTO looked for and did not find (tests/python reports it)
if(NOT TESSERA_PYTHON MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "TESSERA_PYTHON=${TESSERA_PYTHON}: expected AUTO, ON or OFF")
endif()
if(TESSERA_SANITIZE AND TESSERA_PYTHON STREQUAL "ON")
  message(FATAL_ERROR "TESSERA_PYTHON=ON with TESSERA_SANITIZE=${TESSERA_SANITIZE}: the interpreter would need the sanitizer runtime preloaded")
elseif(TESSERA_SANITIZE)
  message(STATUS "Python package: off (sanitizer build)")
elseif(NOT TESSERA_PYTHON STREQUAL "OFF")
  if(NOT DEFINED Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
    set(Python3_EXECUTABLE /usr/bin/python3)
  endif()
  find_package(Python3 COMPONENTS Interpreter Development.Module QUIET)
  if(Python3_FOUND)
    set(PYBIND11_FINDPYTHON ON)
    find_package(pybind11 CONFIG QUIET)
  endif()
  if(Python3_FOUND AND pybind11_FOUND)
    set(TESSERA_HAVE_PYTHON ON)
    message(STATUS "Python package: on (${Python3_EXECUTABLE}, Python ${Python3_VERSION}, pybind11 ${pybind11_VERSION})")
  else()
    set(_why "")
    if(NOT Python3_FOUND)
      set(_why "the Python 3 headers (Debian: python3-dev)")
    else()
      set(_why "pybind11 (Debian: pybind11-dev)")
    endif()
    if(TESSERA_PYTHON STREQUAL "ON")
      message(FATAL_ERROR "TESSERA_PYTHON=ON but ${_why} was not found")
    endif()
    message(STATUS "Python package: off (${_why} not found)")
    set(TESSERA_PYTHON_MISSING "${_why}")
  endif()
endif()
if(TESSERA_HAVE_PYTHON)
  set(CMAKE_POSITION_INDEPENDENT_CODE ON)
endif()
