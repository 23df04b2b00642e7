# Helpers shared by every module: warnings, sanitizers, test registration with ctest labels.

set(HYD_WARNINGS -Wall -Wextra -Wpedantic -Wno-unused-parameter)
if(HYD_WERROR)
  list(APPEND HYD_WARNINGS -Werror)
endif()
if(HYD_SANITIZE)
  add_compile_options(-fsanitize=${HYD_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${HYD_SANITIZE})
endif()

# hyd_add_library(name SOURCES a.cpp ... DEPS lib ...)
function(hyd_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${HYD_WARNINGS}>)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# hyd_add_test(name LABELS unit;data SOURCES x_test.cpp DEPS hyd_data [ENV K=V ...])
# One gtest binary per call, registered as one ctest test with the given labels.
function(hyd_add_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;DEPS;LABELS;ENV" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${HYD_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name} --gtest_brief=1 WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
    ENVIRONMENT "HYD_SOURCE_DIR=${PROJECT_SOURCE_DIR};HYD_BINARY_DIR=${CMAKE_BINARY_DIR};${ARG_ENV}")
endfunction()

# hyd_mpi_launch_command(out_var NP n): the command prefix that starts n ranks under mpirun
# (MPIEXEC_EXECUTABLE from FindMPI; Open MPI gets --oversubscribe so that n may exceed the cores).
function(hyd_mpi_launch_command out_var)
  cmake_parse_arguments(ARG "" "NP" "" ${ARGN})
  if(NOT DEFINED HYD_MPIEXEC_IS_OPENMPI)
    execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE hyd_mpiexec_version
                    ERROR_QUIET RESULT_VARIABLE hyd_mpiexec_rc)
    if(hyd_mpiexec_version MATCHES "Open MPI|OpenRTE")
      set(HYD_MPIEXEC_IS_OPENMPI ON CACHE INTERNAL "mpirun is Open MPI's")
    else()
      set(HYD_MPIEXEC_IS_OPENMPI OFF CACHE INTERNAL "mpirun is Open MPI's")
    endif()
  endif()
  set(extra "")
  if(HYD_MPIEXEC_IS_OPENMPI)
    set(extra --oversubscribe)
  endif()
  set(${out_var} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ARG_NP} ${extra} ${MPIEXEC_PREFLAGS}
      PARENT_SCOPE)
endfunction()

# Environment of every mpirun test: Open MPI refuses to start as root without these (CI runs as
# root), and the shared-memory transport falls back to copies where ptrace-based CMA is denied.
set(HYD_MPI_TEST_ENV OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    OMPI_MCA_btl_vader_single_copy_mechanism=none)

# hyd_add_mpi_test(name NP 4 SOURCES x_test.cpp DEPS hyd_comm ... [LABELS parallel] [TIMEOUT s]
#                  [ENV K=V ...])
# A gtest binary run as `mpirun -np NP <bin> --gtest_brief=1`, labels `mpi` + LABELS. Its main is
# tests/comm/mpi_test_main.cpp (target hyd_mpi_test_main): MPI start, gtest output from rank 0
# only (other ranks print just their failures), and any failing rank fails the run. Tests reach
# the world through hydraulis::comm::testing::mpi_test_world() ("comm/mpi_test_world.h" under
# tests/). Does nothing when HYD_MPI is OFF.
function(hyd_add_mpi_test name)
  cmake_parse_arguments(ARG "" "NP;TIMEOUT" "SOURCES;DEPS;LABELS;ENV" ${ARGN})
  if(NOT HYD_MPI)
    return()
  endif()
  if(NOT ARG_NP)
    set(ARG_NP 4)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${HYD_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} hyd_mpi_test_main GTest::gtest)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  hyd_mpi_launch_command(launch NP ${ARG_NP})
  add_test(NAME ${name} COMMAND ${launch} $<TARGET_FILE:${name}> ${MPIEXEC_POSTFLAGS} --gtest_brief=1
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set(labels mpi ${ARG_LABELS})
  list(REMOVE_DUPLICATES labels)
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT ${ARG_TIMEOUT} PROCESSORS ${ARG_NP}
    ENVIRONMENT "HYD_SOURCE_DIR=${PROJECT_SOURCE_DIR};HYD_BINARY_DIR=${CMAKE_BINARY_DIR};${HYD_MPI_TEST_ENV};${ARG_ENV}")
endfunction()
