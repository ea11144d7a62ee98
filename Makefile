# bulwark: the two commands of the README's quick start, and a few more.
#   make run    build and run the main job (the seed's server, port 1337)
#   make test   build with gcc and clang (-Werror) and run every test
# Both install what they need first (scripts/deps.sh, Debian packages).

JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
GCC_DIR  := build/gcc
CLANG_DIR := build/clang
CMAKE_FLAGS ?=
# The main job: the seed's server written on bulwark.
MAIN_TARGET := bulwark-server

.PHONY: all run test soak fuzz configure build build-clang deps-run deps-test clean

all: build

deps-run:
	@scripts/deps.sh run

deps-test:
	@scripts/deps.sh test

configure:
	@cmake -S . -B $(GCC_DIR) -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: configure
	cmake --build $(GCC_DIR) -j $(JOBS)

# clang builds everything too (-Wall -Wextra -Werror), tests included.
build-clang:
	cmake -S . -B $(CLANG_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DBW_VALGRIND_TESTS=OFF -DBW_SANITIZER_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(CLANG_DIR) -j $(JOBS)

run: deps-run configure
	cmake --build $(GCC_DIR) -j $(JOBS) --target $(MAIN_TARGET)
	$(GCC_DIR)/examples/$(MAIN_TARGET)

test: deps-test
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory build-clang
	cd $(GCC_DIR) && ctest --output-on-failure --no-tests=error -j $(JOBS)

# 10,000 worker crashes and replacements under light load (issue 7).
soak: deps-test build
	BW_BUILD_DIR=$(CURDIR)/$(GCC_DIR) /usr/bin/python3 tests/e2e/soak.py --restarts $(or $(SOAK_RESTARTS),10000)

# Every libFuzzer harness for FUZZ_SECONDS each (clang, ASan+UBSan).
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh fuzz
	cmake -S . -B build/fuzz -DCMAKE_C_COMPILER=clang -DBW_FUZZ=ON -DBW_VALGRIND_TESTS=OFF \
	  -DBW_SANITIZER_TESTS=OFF -DBW_BUILD_EXAMPLES=OFF -DBW_BUILD_BENCH=OFF >/dev/null
	cmake --build build/fuzz -j $(JOBS) --target $$(cd fuzz && ls fuzz_*.c | sed 's/\.c$$//')
	scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf build
