# HYD_FUZZ=ON: libFuzzer build (clang only). Every library is compiled with coverage feedback
# (fuzzer-no-link) plus ASan and UBSan, and UBSan findings abort so that libFuzzer records them.
# The targets themselves live in fuzz/ (docs/reliability.md).
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "HYD_FUZZ=ON needs clang (libFuzzer): configure with "
                      "CC=clang CXX=clang++ (apt-get install clang libclang-rt-14-dev)")
endif()
if(HYD_SANITIZE)
  message(FATAL_ERROR "HYD_FUZZ=ON sets its own sanitizers; leave HYD_SANITIZE empty")
endif()
set(HYD_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                   -fno-omit-frame-pointer -g)
add_compile_options(${HYD_FUZZ_FLAGS})
add_link_options(-fsanitize=address,undefined)
