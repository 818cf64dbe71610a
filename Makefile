# Sluice: the two commands a newcomer needs are `make run` and `make test`.
JOBS ?= 2
PYTEST := /usr/bin/python3 -m pytest
CMAKE_GEN := -G Ninja

.PHONY: all bootstrap build run image test test-release test-asan test-tsan fuzz-smoke fuzz bench-quick bench-startup bench-micro clean

all: build

bootstrap:
	@scripts/bootstrap

build/build.ninja:
	cmake -S . -B build $(CMAKE_GEN) -DSLUICE_MODE=release

build-asan/build.ninja:
	cmake -S . -B build-asan $(CMAKE_GEN) -DSLUICE_MODE=asan

build-tsan/build.ninja:
	cmake -S . -B build-tsan $(CMAKE_GEN) -DSLUICE_MODE=tsan

build-fuzz/build.ninja:
	CC=clang CXX=clang++ cmake -S . -B build-fuzz $(CMAKE_GEN) -DSLUICE_MODE=fuzz

# Release binaries: build/bin/sluice, build/bin/sluice-mock (+ unit tests).
build: bootstrap build/build.ninja
	ninja -C build -j$(JOBS)

# Builds, then runs the gateway on its embedded default (every model -> built-in mock).
run: build
	@echo
	@echo "Sluice is starting on :8080 (admin on 127.0.0.1:9901). In another terminal try:"
	@echo
	@echo "  curl -N http://localhost:8080/v1/chat/completions -H 'content-type: application/json' \\"
	@echo "    -d '{\"model\":\"mock-1\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'"
	@echo
	@echo "  curl http://127.0.0.1:9901/metrics"
	@echo
	exec build/bin/sluice

# The container image from the release binary: sluice:latest and sluice:<version>,
# FROM scratch, no registry pull (deploy/README.md says how to run it here).
image: build
	deploy/build-image build/bin/sluice

# Everything: unit + end-to-end in release, a smoke run of the benchmark runner (well-formed results only),
# the same tests again under ASan+UBSan, then a fuzz smoke run.
test: bootstrap
	@scripts/timed "release build + unit + e2e" $(MAKE) test-release
	@scripts/timed "bench smoke" bench/compare --smoke
	@scripts/timed "asan build + unit + e2e" $(MAKE) test-asan
	@scripts/timed "fuzz build + smoke" $(MAKE) fuzz-smoke
	@echo "make test: all suites passed"

test-release: build/build.ninja
	ninja -C build -j$(JOBS)
	cd build && ctest --output-on-failure -j2 --timeout 120
	SLUICE_BIN=$(CURDIR)/build/bin $(PYTEST) -q tests/e2e

test-asan: build-asan/build.ninja
	ninja -C build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j2 --timeout 300
	SLUICE_BIN=$(CURDIR)/build-asan/bin SLUICE_SANITIZED=1 \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTEST) -q tests/e2e

test-tsan: build-tsan/build.ninja
	ninja -C build-tsan -j$(JOBS)
	cd build-tsan && ctest --output-on-failure -j2 --timeout 300

FUZZ_SECONDS ?= 20
fuzz-smoke: build-fuzz/build.ninja
	ninja -C build-fuzz -j$(JOBS)
	tests/fuzz/run-all build-fuzz/bin $(FUZZ_SECONDS)

fuzz: build-fuzz/build.ninja
	ninja -C build-fuzz -j$(JOBS)
	tests/fuzz/run-all build-fuzz/bin 600

bench-quick: build
	bench/quick.sh

# Google Benchmark micro-benchmarks of the hot pieces (bench/micro): not part of
# `make build`; extra arguments in BENCH_ARGS, e.g. BENCH_ARGS=--benchmark_filter=Sse.
BENCH_ARGS ?=
bench-micro: bootstrap build/build.ninja
	ninja -C build -j$(JOBS) sluice_micro
	build/bin/sluice_micro $(BENCH_ARGS)

# Cold start to ready (/readyz 200) of the release binary on its embedded default.
bench-startup: build
	bench/startup.py build/bin 20

clean:
	rm -rf build build-asan build-tsan build-fuzz

# Side-by-side comparison with nginx, HAProxy, Go net/http, fasthttp, quic-go
# and Portkey in front of the same mock (bench/README.md). bench-peers installs
# and builds the peers (apt, npm; outputs in ~/.cache/sluice-bench).
.PHONY: bench bench-compare-quick bench-compare-smoke bench-peers
bench-peers:
	bench/peers/install

# Full run (< 20 min on 2 cores): bench/results/<timestamp>.{json,md,svg}, rewrites bench/RESULTS.md.
bench: build bench-peers
	bench/compare --full

# Quick run (< 3 min), same scenarios, smaller.
bench-compare-quick: build bench-peers
	bench/compare --quick

# ~20 s, direct + sluice only: checks that the runner produces well-formed results.
bench-compare-smoke: build
	bench/compare --smoke
