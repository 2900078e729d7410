# spore — GNU make build. Targets: all (default) deps test demo bench bench-deps
# repl install clean fuzz.  Options: CUDA=1  SANITIZE=1  PREFIX=/usr/local
.DEFAULT_GOAL := all
SHELL := /bin/bash

CC      ?= cc
LUAJIT  ?= luajit
PREFIX  ?= /usr/local
NVCC    ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))

BUILD := build
ifeq ($(SANITIZE),1)
  BUILD := build/san
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ifeq ($(CUDA),1)
  BUILD := build/cuda
endif

CFLAGS_BASE := -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -fopenmp -D_GNU_SOURCE -fvisibility=hidden \
               -Iengine/include -Iengine -I$(BUILD)/gen
CFLAGS  += $(CFLAGS_BASE) $(SANFLAGS)
LDLIBS  := -lopenblas -lprotobuf-c -lz -lcrypto -lcjson -lm -lgomp -lpthread
LDFLAGS += $(SANFLAGS)

PROTOS   := $(wildcard proto/*.proto)
PROTO_C  := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H  := $(PROTO_C:.c=.h)
ENGINE_SRC := $(sort $(wildcard engine/core/*.c engine/cpu/*.c engine/ops/*.c engine/io/*.c))
OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(ENGINE_SRC)) $(patsubst %.c,%.o,$(PROTO_C))

CUDA_SRC := $(wildcard engine/cuda/*.cu)
ifeq ($(CUDA),1)
  ifneq ($(CUDA_SRC),)
    CFLAGS += -DSP_HAVE_CUDA
    OBJS += $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_SRC))
    LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas
  endif
endif

LIB_SO := $(BUILD)/libspore.so
LIB_A  := $(BUILD)/libspore.a
CDEF   := bindings/ffi/cdef.lua
TEST_ENGINE := $(BUILD)/test_engine
HOST_EXAMPLE := $(BUILD)/spore_host_example

.PHONY: all deps test test-slow demo bench bench-compare bench-deps repl install clean fuzz cdef check-engine

all: $(LIB_SO) $(LIB_A) $(CDEF) $(HOST_EXAMPLE)

deps:
	@bash scripts/deps.sh

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(filter-out -Werror -Wextra,$(CFLAGS)) -c $< -o $@

$(BUILD)/obj/%.o: %.c engine/include/spore.h $(wildcard engine/core/*.h engine/cpu/*.h engine/ops/*.h engine/io/*.h) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu engine/include/spore.h
	@mkdir -p $(dir $@)
	$(NVCC) -O2 -Xcompiler -fPIC -Xcompiler -fvisibility=hidden -Iengine/include -c $< -o $@

$(LIB_SO): $(OBJS)
	$(CC) -shared -o $@ $(OBJS) $(LDFLAGS) $(LDLIBS)

$(LIB_A): $(OBJS)
	@rm -f $@
	ar rcs $@ $(OBJS)

$(CDEF): engine/include/spore.h scripts/gen_cdef.lua
	$(LUAJIT) scripts/gen_cdef.lua engine/include/spore.h $@

cdef: $(CDEF)

# An example C host that embeds LuaJIT + spore (bindings/host).
$(HOST_EXAMPLE): bindings/host/spore_host.c bindings/host/example_host.c bindings/host/spore_host.h $(LIB_A)
	$(CC) $(CFLAGS) -Ibindings/host $(shell pkg-config --cflags luajit) -o $@ \
	  bindings/host/spore_host.c bindings/host/example_host.c -Wl,--whole-archive $(LIB_A) -Wl,--no-whole-archive -rdynamic $(LDFLAGS) \
	  $(shell pkg-config --libs luajit) $(LDLIBS) -ldl

TEST_SRC := $(sort $(wildcard spec/engine/*.c))
$(TEST_ENGINE): $(TEST_SRC) $(LIB_A) spec/engine/check.h $(wildcard spec/fuzz/*.c)
	$(CC) $(CFLAGS) -Ispec/engine -o $@ $(TEST_SRC) $(LIB_A) $(LDFLAGS) $(LDLIBS)

check-engine: $(TEST_ENGINE)
	$(TEST_ENGINE)

# make test SPORE_DEVICE=sim: every network, optimizer state and dataset batch on that device
test: deps all $(TEST_ENGINE)
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) SPORE_DEVICE=$(SPORE_DEVICE) bash scripts/run_tests.sh

# Long end-to-end checks (specs tagged "slow": kills during big saves, races, 205 MB files)
test-slow: deps all
	@SPORE_LIB=$(CURDIR)/$(BUILD)/libspore.so SPORE_DEVICE=$(SPORE_DEVICE) $(LUAJIT) /usr/bin/busted \
	  --tags=slow --exclude-tags=cuda -o utfTerminal

demo: deps all
	$(LUAJIT) scripts/demo.lua

repl: all
	$(LUAJIT) scripts/repl.lua

# the bench venv ($(BUILD)/bench-venv): PyPI's torch and mindspore; SPORE_BENCH_SEED=/path/venv
# reuses an existing venv's packages instead of downloading them
bench-deps:
	@BUILD=$(BUILD) SPORE_BENCH_SEED=$(SPORE_BENCH_SEED) bash scripts/deps.sh --bench

bench: all
	@bash scripts/bench/run.sh $(BUILD)

# spore's LeNet/ResNet figures against another commit, alternating in one run: make bench-compare REV=main~1
bench-compare: all
	@bash scripts/bench/compare_commits.sh $(or $(REV),HEAD~1) $(or $(ROUNDS),5)

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/share/lua/5.1/spore $(DESTDIR)$(PREFIX)/share/spore/bindings/ffi
	install -m 644 $(LIB_SO) $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 engine/include/spore.h $(DESTDIR)$(PREFIX)/include/
	cp -R lua/spore/. $(DESTDIR)$(PREFIX)/share/lua/5.1/spore/
	install -m 644 bindings/ffi/*.lua $(DESTDIR)$(PREFIX)/share/spore/bindings/ffi/
	sed -e 's|@PREFIX@|$(PREFIX)|g' scripts/spore.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spore.pc

fuzz:
	@bash scripts/fuzz.sh

clean:
	rm -rf build $(CDEF)

# checkpoint io: generated protobuf-c sources are never deleted as intermediates
.SECONDARY: $(PROTO_C) $(PROTO_H)
