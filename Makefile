# bd: build, test, bench, demo, install.
#   make              build libcommon and every tool (-Wall -Wextra -Werror)
#   make test         Check unit tests + command-line tests (ends with Check's summary)
#   make test SAN=1   the same under ASan + UBSan (separate build directory)
#   make fuzz         libFuzzer on every parser, FUZZ_SECONDS each (default 60); fuzz-seeds
#   make bench        benchmarks (not run by CI)
#   make bench-large  7B/1.1B-shaped benchmarks (bench/large; a 13.5 GB model made once)
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
DEPS_DEB = build-essential pkg-config zstd bzip2 jq libzstd-dev libmsgpack-dev libopenblas-dev check libcjson-dev libbz2-dev gnuplot-nox clang python3-numpy openmpi-bin libopenmpi-dev

VERSION  = 0.1.0
WARN     = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS = -std=c11 -g $(OPT) -D_GNU_SOURCE -pthread $(WARN) $(SANFLAGS)
LIB_DIRS  = $(sort $(dir $(wildcard libcommon/*/*.c libcommon/*/*.h)))
CPPFLAGS += $(addprefix -I,$(LIB_DIRS)) -Itools $(shell pkg-config --cflags $(PKGS))
CFLAGS   ?=
ALLCFLAGS = $(BASEFLAGS) $(CFLAGS) -DBD_VERSION='"$(VERSION)"' -DBD_BUILD_FLAGS='"$(CC) $(OPT) SAN=$(SAN) MPI=$(MPI)"'
# libbz2 has no pkg-config file on Debian: linked by name.
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -lbz2 -lm -pthread
LDFLAGS  += $(SANFLAGS)

# MPI (data-parallel bd-qat under mpirun): on when Open MPI's compiler wrapper mpicc is found
# (Debian: libopenmpi-dev, which make deps installs), MPI=0 builds without it. Only bd_dist.c
# includes mpi.h (as a system header); a build without MPI trains as one process.
ifndef MPI
MPI := $(if $(shell command -v mpicc 2>/dev/null),1,0)
endif
ifeq ($(MPI),1)
MPI_CPPFLAGS := -DBD_MPI $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile))
LDLIBS       += $(shell mpicc --showme:link)
endif
$(BUILD)/libcommon/train/bd_dist.o: CPPFLAGS += $(MPI_CPPFLAGS)

LIB_SRC   = $(wildcard libcommon/*/*.c)
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
LIB       = $(BUILD)/libbd.a
TOOLHELP_SRC = $(filter-out tools/bd-%.c,$(wildcard tools/*.c))
TOOLHELP_OBJ = $(TOOLHELP_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC  = $(wildcard tools/bd-*.c)
TOOLS     = $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
UNIT_SRC  = tests/unit/main.c $(wildcard tests/unit/test_*.c)
FUZZ_SRC  = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
UNIT_OBJ  = $(UNIT_SRC:%.c=$(BUILD)/%.o) $(FUZZ_SRC:%.c=$(BUILD)/%.o)
UNIT      = $(BUILD)/tests/unit_tests
BENCH_SRC = $(wildcard bench/*.c)
BENCHES   = $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all test fuzz fuzz-seeds bench bench-large adversarial demo deps install clean
.SECONDARY:
all: $(LIB) $(TOOLS)

$(BUILD)/%.o: %.c $(wildcard libcommon/*/*.h tools/*.h tests/unit/*.h tests/fuzz/*.h) Makefile
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
# Fuzz targets are replayed by the unit runner (test_fuzz_replay.c): each is compiled in with
# its entry point renamed bd_fuzz_<target>.
$(BUILD)/tests/fuzz_targets.h: $(FUZZ_SRC) Makefile
	@mkdir -p $(dir $@)
	@( for t in $(FUZZ_TARGETS); do echo "X($$t)"; done ) > $@.tmp && mv $@.tmp $@
$(BUILD)/tests/unit/test_fuzz_replay.o: $(BUILD)/tests/fuzz_targets.h
$(BUILD)/tests/unit/test_fuzz_replay.o: CPPFLAGS += -I$(BUILD)/tests
$(BUILD)/tests/fuzz/fuzz_%.o: CPPFLAGS += -DLLVMFuzzerTestOneInput=bd_fuzz_$(patsubst fuzz_%,%,$(basename $(notdir $@)))

$(UNIT): $(UNIT_OBJ) $(TOOLHELP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) $(shell pkg-config --libs check) -o $@

# Command-line tests (tests/cli/*.sh) run as one Check suite inside the unit runner,
# so `make test` ends with Check's single summary line.
test: all $(UNIT)
	BD_BIN=$(abspath $(BUILD)/bin) BD_DATA=$(BD_DATA) BD_CLI_DIR=$(abspath tests/cli) \
	  BD_FUZZ_DIR=$(abspath tests/fuzz) BD_TMP=$(abspath $(BUILD)/tmp) $(if $(filter 1,$(SAN)),CK_TIMEOUT_MULTIPLIER=4) $(UNIT)

# libFuzzer needs clang; the fuzz build has its own directory. Every target runs
# FUZZ_SECONDS on its committed seeds (tests/fuzz/seeds/<t>) plus the real files under
# BD_DATA (tests/fuzz/real_seeds.sh); new inputs go to build-fuzz/corpus/<t>, crashes to
# build-fuzz/crashes/<t> (copy a reproducer to tests/fuzz/crashes/<t> so make test replays it).
FUZZ_SECONDS ?= 60
FUZZ_FLAGS = -std=c11 -g -O1 -D_GNU_SOURCE -fsanitize=address,undefined $(addprefix -I,$(LIB_DIRS)) $(shell pkg-config --cflags $(PKGS))
FUZZ_LIB_OBJ = $(LIB_SRC:%.c=build-fuzz/%.o)
build-fuzz/%.o: %.c $(wildcard libcommon/*/*.h tests/fuzz/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "CC (fuzz) $<"
	@clang $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/libbd.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libbd.a
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer $< build-fuzz/libbd.a $(LDLIBS) -o $@
fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	BD_DATA=$(BD_DATA) sh tests/fuzz/real_seeds.sh build-fuzz/real
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t build-fuzz/crashes/$$t build-fuzz/real/$$t || exit 1; \
	  echo "== fuzz_$$t ($(FUZZ_SECONDS) s)"; \
	  BD_TMP=$(abspath build-fuzz) build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536 \
	    -print_final_stats=1 -artifact_prefix=build-fuzz/crashes/$$t/ \
	    build-fuzz/corpus/$$t tests/fuzz/seeds/$$t build-fuzz/real/$$t >build-fuzz/fuzz_$$t.log 2>&1; \
	  grep -E "^stat::number_of_executed_units|(INITED|DONE) +cov:|==[0-9]+==ERROR|^SUMMARY" build-fuzz/fuzz_$$t.log; \
	  grep -q "^Done" build-fuzz/fuzz_$$t.log || { echo "fuzz_$$t failed: see build-fuzz/fuzz_$$t.log"; exit 1; }; \
	done

# Regenerates the committed seed corpus of every fuzz target from bd's own writers.
fuzz-seeds: $(LIB)
	@mkdir -p build-fuzz/seedwork
	$(CC) $(CPPFLAGS) $(ALLCFLAGS) tests/fuzz/make_seeds.c $(LIB) $(LDLIBS) -o build-fuzz/make_seeds
	build-fuzz/make_seeds tests/fuzz/seeds tests/fixtures build-fuzz/seedwork

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(TOOLHELP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

bench: all $(BENCHES)
	@for b in $(BENCHES); do echo "== $$b"; BD_DATA=$(BD_DATA) BD_BIN=$(abspath $(BUILD)/bin) $$b || exit 1; done
	@for s in bench/*.sh; do [ -e "$$s" ] || continue; echo "== $$s"; BD_DATA=$(BD_DATA) BD_BIN=$(abspath $(BUILD)/bin) sh $$s || exit 1; done

# Large-model benchmarks (bench/large/*.sh; not CI): their models are made once under LARGE
# (default build/large; the 7B-shaped one is 13.5 GB).
bench-large: all
	@for s in bench/large/*.sh; do echo "== $$s"; BD_DATA=$(BD_DATA) BD_BIN=$(abspath $(BUILD)/bin) LARGE=$(or $(LARGE),$(BUILD)/large) sh $$s || exit 1; done

# The adversarial pass (tests/adversarial/run.sh): hostile inputs against every tool, each
# checked for exit status, a one-line message and no output left behind. About 4 minutes.
adversarial: all
	BD_BIN=$(abspath $(BUILD)/bin) BD_DATA=$(BD_DATA) BD_TMP=$(abspath $(BUILD)/tmp) sh tests/adversarial/run.sh

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
