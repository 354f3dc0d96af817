# tessera_cc_test(NAME <name> SRCS <files...> DEPS <libs...> [LABELS <labels...>] [TIMEOUT <s>]
#                 [RESOURCE_LOCK <name>])
# One gtest binary; each TEST becomes its own ctest case with the given labels
# (unit, integration, fault, gpu, slurm, mpi). Cases sharing a RESOURCE_LOCK never run
# at the same time under `ctest -j` (the one-node Slurm: two jobs would queue behind
# each other and run into the tests' timeouts).
include(GoogleTest)
function(tessera_cc_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;RESOURCE_LOCK" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SRCS})
  target_link_libraries(${T_NAME} PRIVATE ${T_DEPS} tessera_testutil GTest::gtest GTest::gmock)
  tessera_set_warnings(${T_NAME})
  gtest_discover_tests(${T_NAME}
    DISCOVERY_MODE PRE_TEST
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    EXTRA_ARGS --gtest_color=no)
  # gtest_discover_tests drops the separators of a multi-label list ("integration;slurm"
  # would become the property "slurm"): set the labels again once the tests are known.
  list(LENGTH T_LABELS _n)
  if(_n GREATER 1 OR T_RESOURCE_LOCK)
    set(_props "LABELS \"${T_LABELS}\"")
    if(T_RESOURCE_LOCK)
      string(APPEND _props " RESOURCE_LOCK ${T_RESOURCE_LOCK}")
    endif()
    set(_f "${CMAKE_CURRENT_BINARY_DIR}/${T_NAME}_labels.cmake")
    file(WRITE "${_f}" "if(${T_NAME}_TESTS)\n  set_tests_properties(\${${T_NAME}_TESTS} PROPERTIES ${_props})\nendif()\n")
    set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_f}")
  endif()
endfunction()
