# A thin wrapper around CMake and ctest: the two commands a user needs are
# `make run` and `make test`; both install what is missing first.
BUILD ?= build
JOBS ?= 2

.PHONY: all deps test-deps build run test memcheck asan fuzz clean format

all: build

deps:
	@scripts/deps.sh build

test-deps:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/wslua examples/chat/app.lua

test: test-deps build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The specs under valgrind: any leak or invalid access fails the run.
memcheck: test-deps build
	cd $(BUILD) && WSLUA_MEMCHECK=1 ctest --output-on-failure -R _spec -E interop

# The whole suite (C tests and specs, the wslua binary they start) built with
# AddressSanitizer and UndefinedBehaviorSanitizer, in its own build folder.
ASAN_BUILD ?= build-asan
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined

asan: test-deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_FLAGS="$(ASAN_FLAGS)" >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

# libFuzzer: every target in tests/fuzz for FUZZ_SECONDS each (clang, with
# ASan and UBSan), in its own build folder. A crash leaves the input in
# $(FUZZ_BUILD)/artifacts/.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang-14
FUZZ_FLAGS = -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined

fuzz: deps
	@scripts/deps.sh fuzz
	@cmake -S . -B $(FUZZ_BUILD) -DWSLUA_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
		-DCMAKE_C_COMPILER=$(FUZZ_CC) -DCMAKE_C_FLAGS="$(FUZZ_FLAGS)" >/dev/null
	@cmake --build $(FUZZ_BUILD) --target fuzzers -j$(JOBS)
	@scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# Benchmarks against the peers (bench/run.sh, about 10 minutes, then the
# fan-out scenario, bench/fanout.sh, about 4): the tables are printed and
# written to bench/results/<date>.md and <date>-fanout.md. BENCH_SECS,
# BENCH_REPS, BENCH_ONLY and BENCH_SCENARIOS (see the scripts) shorten them.
.PHONY: bench bench-deps
bench-deps:
	@scripts/deps.sh bench

bench: bench-deps build
	@cmake --build $(BUILD) --target bench -j$(JOBS)
	bench/run.sh $(BUILD)
	bench/fanout.sh $(BUILD)

format:
	clang-format -i src/*.c src/*/*.[ch] tests/*.[ch] tests/fuzz/*.[ch]

# The man page, from README.md (scripts/man.lua): run after editing the
# README and commit wslua.1 with it (spec/man_spec.lua checks they agree).
.PHONY: man
man:
	lua5.4 scripts/man.lua README.md CMakeLists.txt > wslua.1

clean:
	rm -rf $(BUILD)
