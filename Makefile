# The two front-door commands: `make demo` and `make check`.
# Both install missing Debian packages, configure CMake and build with all cores: `make demo` only
# the `diffeoflow` command line it runs, `make check` (and `make build`) every target.

BUILD      ?= build
ASAN_BUILD ?= build-asan
DEMO_OUT   ?= demo-output
JOBS       := $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
# The sanitizer pass over the unit tests is skipped with SANITIZE=0.
SANITIZE   ?= 1
# Tests too slow under ASan on 2 cores (they train to an accuracy); the Release pass runs them.
ASAN_EXCLUDE ?= OdeNetLearnsTwoSpirals

.PHONY: all deps configure build build-cli demo check test sanitize bench fuzz clean

all: build

deps:
	@sh scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

# Only what the demo runs: not the test binaries, examples or benchmarks.
build-cli: configure
	@cmake --build $(BUILD) -j $(JOBS) --target diffeoflow

demo: build-cli
	@sh scripts/demo.sh $(BUILD) $(DEMO_OUT)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 900

# -g1 (line tables: file:line in every sanitizer stack trace, no variable or type information)
# instead of RelWithDebInfo's -g: each heavy file compiles in 0.65-0.74x the time, the build tree
# is 0.9 GB instead of 2.8 GB.
sanitize: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIFFEOFLOW_SANITIZE=ON \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
	  -DDIFFEOFLOW_BUILD_APPS=OFF -DDIFFEOFLOW_BUILD_EXAMPLES=OFF -DDIFFEOFLOW_BUILD_BENCH=OFF \
	  -DDIFFEOFLOW_BUILD_PYTHON=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) --timeout 1200 -LE slow -E '$(ASAN_EXCLUDE)'

check: test
	@if [ "$(SANITIZE)" = "1" ]; then $(MAKE) --no-print-directory sanitize; fi

FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60

# libFuzzer over the NIfTI, PNG, .npy, IDX and HDF5 readers (clang), FUZZ_SECONDS per target.
fuzz: deps
	@sh scripts/install-deps.sh clang
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDIFFEOFLOW_FUZZ=ON -DDIFFEOFLOW_BUILD_TESTS=OFF \
	  -DDIFFEOFLOW_BUILD_APPS=OFF -DDIFFEOFLOW_BUILD_EXAMPLES=OFF -DDIFFEOFLOW_BUILD_BENCH=OFF \
	  -DDIFFEOFLOW_BUILD_PYTHON=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@sh scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	@for b in $(BUILD)/bench/bench_*; do echo "== $$b"; $$b; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
