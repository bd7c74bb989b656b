# A thin wrapper around CMake and ctest: the two commands a user needs are
# `make run` and `make test`; both install what is missing first.
BUILD ?= build
JOBS ?= 2

.PHONY: all deps test-deps build run test memcheck clean format

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

format:
	clang-format -i src/*.c src/*/*.[ch] tests/*.[ch]

clean:
	rm -rf $(BUILD)
