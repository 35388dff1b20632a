# Viesti: the top-level driver. CMake does the building; this file names the everyday commands.
#   make            build build/viesti and libviesti (RelWithDebInfo)
#   make run        install missing packages, build, start the broker on localhost:1883
#   make test       install missing packages, check the formatting, build with ASan+UBSan, run
#                   unit, integration and brief fuzz tests (integration tests in TEST_JOBS
#                   parallel pytest-xdist workers, then those marked serial one at a time)
#   make format     reformat every C file with clang-format (.clang-format)
#   make fuzz       run every libFuzzer target for FUZZ_SECONDS (default 60) each
#   make bench      build and run the micro-benchmarks and a quick side-by-side with Mosquitto
#                   (bench/compare without --quick for the full table)
#   make examples   build examples/
#   make install PREFIX=/usr/local
#   make deb        build a Debian package (DEBOUT/viesti_VERSION-1_ARCH.deb): the broker and
#                   tools, libviesti + header + pkg-config, man pages, the systemd unit, the
#                   configuration under /etc/viesti (packaging/, docs/packaging.md)
#   make clean

PREFIX ?= /usr/local
BUILD ?= build
SANBUILD ?= build-san
FUZZBUILD ?= build-fuzz
DEBBUILD ?= build-deb
DEBOUT ?= dist
FUZZ_SECONDS ?= 60
FUZZ_BRIEF_SECONDS ?= 10
JOBS ?= $(shell nproc)
GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
PYTEST ?= /usr/bin/python3 -m pytest
# pytest-xdist workers for the integration tests that may share the machine (most of them wait
# on sockets more than they compute); those marked serial run afterwards, one at a time.
TEST_JOBS ?= 4

.PHONY: all build san run test unit integration fuzz fuzz-build fuzz-brief bench examples install deb clean deps format format-check

all: build

deps:
	@scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	exec $(abspath $(BUILD))/viesti broker -v

$(SANBUILD)/CMakeCache.txt:
	cmake -S . -B $(SANBUILD) $(GEN) -DCMAKE_BUILD_TYPE=Debug -DVS_SANITIZE=ON

san: $(SANBUILD)/CMakeCache.txt
	cmake --build $(SANBUILD) -j $(JOBS)

test: deps format-check san
	$(MAKE) --no-print-directory unit integration fuzz-brief

# Every C file as .clang-format says (clang-format 14, Debian 12's).
C_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench examples -name '*.[ch]')

format-check:
	@clang-format --dry-run --Werror $(C_FILES) && echo "format: $(words $(C_FILES)) files as .clang-format says"

format:
	clang-format -i $(C_FILES)

unit:
	cd $(SANBUILD) && ctest --output-on-failure -j $(JOBS)

integration:
	[ -d tests/node_modules/mqtt ] && [ -d tests/node_modules/playwright-core ] || (cd tests && npm ci --no-audit --no-fund)
	VIESTI_BIN=$(CURDIR)/$(SANBUILD)/viesti $(PYTEST) -q --durations=10 -n $(TEST_JOBS) -m "not serial" tests/integration
	VIESTI_BIN=$(CURDIR)/$(SANBUILD)/viesti $(PYTEST) -q --durations=10 -m serial tests/integration

$(FUZZBUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZBUILD) $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVS_FUZZ=ON

fuzz-build: $(FUZZBUILD)/CMakeCache.txt
	cmake --build $(FUZZBUILD) -j $(JOBS) --target fuzz_all

fuzz: deps fuzz-build
	scripts/run-fuzz $(FUZZBUILD) $(FUZZ_SECONDS)

fuzz-brief: fuzz-build
	scripts/run-fuzz $(FUZZBUILD) $(FUZZ_BRIEF_SECONDS)

bench: deps build
	for b in $(abspath $(BUILD))/bench_*; do echo "== $$(basename $$b)"; $$b || exit 1; done
	/usr/bin/python3 bench/compare --viesti $(abspath $(BUILD))/viesti --quick

examples: build
	$(MAKE) -C examples VIESTI_BUILD=$(abspath $(BUILD))

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

$(DEBBUILD)/CMakeCache.txt:
	cmake -S . -B $(DEBBUILD) $(GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr -DVS_TESTS=OFF

deb: $(DEBBUILD)/CMakeCache.txt
	cmake --build $(DEBBUILD) -j $(JOBS) --target viesti viesti_static viesti_shared
	packaging/build-deb $(DEBBUILD) $(DEBOUT)

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD) $(DEBBUILD) $(DEBOUT)
