# bd: build, test, bench, demo, install.
#   make              build libcommon and every tool (-Wall -Wextra -Werror)
#   make test         Check unit tests + command-line tests (ends with Check's summary)
#   make test SAN=1   the same under ASan + UBSan (separate build directory)
#   make fuzz         libFuzzer target for the stream reader (FUZZ_SECONDS, default 60)
#   make bench        benchmarks (not run by CI)
#   make deps         install the Debian packages bd needs (root)
#   make install      PREFIX=/usr/local
# BD_DATA points at the shared real data (default ../shared/data).

PREFIX  ?= /usr/local
BD_DATA ?= $(abspath ../shared/data)
CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      = -O1
else
BUILD   ?= build
SANFLAGS =
OPT      = -O2
endif

PKGS     = libzstd msgpack openblas libcjson
DEPS_DEB = build-essential pkg-config zstd bzip2 jq libzstd-dev libmsgpack-dev libopenblas-dev check libcjson-dev libbz2-dev gnuplot-nox clang

VERSION  = 0.1.0
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS = -std=c11 -g $(OPT) -D_GNU_SOURCE -pthread $(WARN) $(SANFLAGS)
CPPFLAGS += -Ilibcommon -Itools $(shell pkg-config --cflags $(PKGS))
CFLAGS   ?=
ALLCFLAGS = $(BASEFLAGS) $(CFLAGS) -DBD_VERSION='"$(VERSION)"' -DBD_BUILD_FLAGS='"$(CC) $(OPT) SAN=$(SAN)"'
# libbz2 has no pkg-config file on Debian: linked by name.
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -lbz2 -lm -pthread
LDFLAGS  += $(SANFLAGS)

LIB_SRC   = $(wildcard libcommon/*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       = $(BUILD)/libbd.a
TOOLHELP_SRC = $(filter-out tools/bd-%.c,$(wildcard tools/*.c))
TOOLHELP_OBJ = $(TOOLHELP_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC  = $(wildcard tools/bd-*.c)
TOOLS     = $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
UNIT_SRC  = tests/unit/main.c $(wildcard tests/unit/test_*.c)
UNIT_OBJ  = $(UNIT_SRC:%.c=$(BUILD)/%.o)
UNIT      = $(BUILD)/tests/unit_tests
BENCH_SRC = $(wildcard bench/*.c)
BENCHES   = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test fuzz bench demo deps install clean
.SECONDARY:
all: $(LIB) $(TOOLS)

$(BUILD)/%.o: %.c $(wildcard libcommon/*.h tools/*.h tests/unit/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "CC $<"
	@$(CC) $(CPPFLAGS) $(ALLCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/tools/%.o $(TOOLHELP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The unit runner collects every suite_<file>() from tests/unit/test_<file>.c.
$(BUILD)/tests/suites.h: $(UNIT_SRC) Makefile
	@mkdir -p $(dir $@)
	@( for f in $(notdir $(basename $(filter tests/unit/test_%.c,$(UNIT_SRC)))); do \
	     echo "X($${f#test_})"; done ) > $@.tmp && mv $@.tmp $@
$(BUILD)/tests/unit/main.o: $(BUILD)/tests/suites.h
$(BUILD)/tests/unit/main.o: CPPFLAGS += -I$(BUILD)/tests

$(UNIT): $(UNIT_OBJ) $(TOOLHELP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs check) -o $@

# Command-line tests (tests/cli/*.sh) run as one Check suite inside the unit runner,
# so `make test` ends with Check's single summary line.
test: all $(UNIT)
	BD_BIN=$(abspath $(BUILD)/bin) BD_DATA=$(BD_DATA) BD_CLI_DIR=$(abspath tests/cli) \
	  BD_TMP=$(abspath $(BUILD)/tmp) $(UNIT)

# libFuzzer needs clang; the fuzz build has its own directory.
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -Ilibcommon $(shell pkg-config --cflags $(PKGS))
fuzz:
	@mkdir -p build-fuzz/corpus
	clang $(FUZZ_FLAGS) tests/fuzz/fuzz_stream.c $(LIB_SRC) $(LDLIBS) -o build-fuzz/fuzz_stream
	build-fuzz/fuzz_stream -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 build-fuzz/corpus tests/fuzz/seeds

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(TOOLHELP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; BD_DATA=$(BD_DATA) BD_BIN=$(abspath $(BUILD)/bin) $$b || exit 1; done
	@for s in bench/*.sh; do [ -e "$$s" ] || continue; echo "== $$s"; BD_DATA=$(BD_DATA) BD_BIN=$(abspath $(BUILD)/bin) sh $$s || exit 1; done

demo: all
	$(MAKE) -f pipelines/demo.mk BD_BIN=$(abspath $(BUILD)/bin) BD_DATA=$(BD_DATA)

# Installs only when something is missing (so it needs no network or lock otherwise).
deps:
	@if dpkg -s $(DEPS_DEB) >/dev/null 2>&1; then echo "deps: all installed"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEPS_DEB)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/

clean:
	rm -rf build build-san build-fuzz
