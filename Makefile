# Hydraulis: `make demo` and `make test` are the two set-up commands (README.md).
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CTEST_EXCLUDE ?= gpu|multigpu|slow

.PHONY: all setup configure build test demo clean test-asan test-tsan fuzz soak

all: build

setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) -LE "$(CTEST_EXCLUDE)"

demo: build
	@scripts/demo.sh $(BUILD_DIR)

# Sanitizer suites: the fast unit tests under ASan+UBSan, and the multi-threaded parts under TSan.
# ASAN_TARGETS / ASAN_TESTS narrow the ASan suite (CI: .ci/run builds only the modules it runs).
ASAN_TARGETS ?= all
ASAN_TESTS ?= .
test-asan: setup
	@cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYD_CUDA=OFF \
	  -DHYD_BUILD_BENCH=OFF -DHYD_SANITIZE=address,undefined $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j $(JOBS) --target $(ASAN_TARGETS)
	@UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
	  ctest --test-dir build-asan --output-on-failure -j $(JOBS) -L unit -LE "$(CTEST_EXCLUDE)" \
	  -R "$(ASAN_TESTS)"

test-tsan: setup
	@cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHYD_CUDA=OFF \
	  -DHYD_BUILD_BENCH=OFF -DHYD_SANITIZE=thread $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	@TSAN_OPTIONS=halt_on_error=1 ctest --test-dir build-tsan --output-on-failure -j $(JOBS) \
	  -L unit -LE "$(CTEST_EXCLUDE)"

# libFuzzer targets (clang): each runs FUZZ_SECONDS from seeds made of the real data files; fails on
# a crash (docs/reliability.md). FUZZ_TARGETS picks a subset, e.g. FUZZ_TARGETS="tokenizer".
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target hydraulis
	@CC=clang CXX=clang++ cmake -S . -B build-fz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DHYD_CUDA=OFF -DHYD_MPI=OFF -DHYD_BUILD_TESTS=OFF -DHYD_BUILD_BENCH=OFF -DHYD_FUZZ=ON \
	  $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-fz -j $(JOBS) --target hyd_fuzzers
	@FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh build-fz $(BUILD_DIR)/bin/hydraulis $(FUZZ_TARGETS)

# Soak: the CPU demo training (4 MPI ranks) killed and resumed at random points for SOAK_MINUTES
# (default 30); its losses must equal an uninterrupted run's (scripts/soak.sh, docs/reliability.md).
soak: build
	@scripts/soak.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-asan build-tsan build-fz
