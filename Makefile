# spore — GNU make build. Targets: all (default) deps test test-slow test-cuda demo bench bench-deps
# repl install docs host clean fuzz.  Options: CUDA=1  SANITIZE=1 (ASan+UBSan)
# SANITIZE=thread (TSan, into build/tsan)  PREFIX=/usr/local  DESTDIR=
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
ifeq ($(SANITIZE),thread)
  BUILD := build/tsan
  SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
endif
ifeq ($(CUDA),1)
  BUILD := build/cuda
endif
# DNNL=1 (default): float32 convolutions on the CPU through oneDNN (Debian's libdnnl-dev,
# OpenMP build; engine/cpu/conv_dnnl.c). DNNL=0: spore's own im2col/Winograd kernels only,
# built into build/nodnnl. At run time spore.config{conv_kernel=} switches between the two.
DNNL ?= 1
ifeq ($(filter 0 1,$(DNNL)),)
  $(error DNNL must be 0 or 1, got '$(DNNL)')
endif
ifeq ($(DNNL),0)
  BUILD := $(BUILD)/nodnnl
endif

CFLAGS_BASE := -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -fopenmp -D_GNU_SOURCE -fvisibility=hidden \
               -Iengine/include -Iengine -I$(BUILD)/gen
CFLAGS  += $(CFLAGS_BASE) $(SANFLAGS)
# OpenBLAS's threading: BLAS=pthread (default; Debian's libopenblas0-pthread) with the nn
# kernels' OpenMP regions off, or BLAS=openmp (Debian's libopenblas0-openmp): GEMMs on the
# same libgomp pool as the nn kernels' regions, which are then on by default. Measured on the
# 2-core machine (scripts/bench/lib_ab.sh, README "Benchmarks"), openmp was no faster overall:
# LeNet5 0.72-0.92x, ResNet50 forward 0.88-0.93x, ResNet50 training step 1.06x. The library
# is named by directory with an rpath, so Debian's alternatives do not decide it (the runtime
# loader looks there first for libopenblas.so.0, and falls back to the system's when the
# directory is missing; make deps installs both builds).
BLAS ?= pthread
ifeq ($(filter pthread openmp,$(BLAS)),)
  $(error BLAS must be pthread or openmp, got '$(BLAS)')
endif
OPENBLAS_DIR := /usr/lib/$(shell $(CC) -print-multiarch 2>/dev/null)/openblas-$(BLAS)
BLAS_LIBS := -L$(OPENBLAS_DIR) -Wl,-rpath,$(OPENBLAS_DIR) -lopenblas
LDLIBS  := $(BLAS_LIBS) -lprotobuf-c -lz -lcrypto -lcjson -ljpeg -lpng -lm -lgomp -lpthread
ifeq ($(DNNL),1)
  CFLAGS += -DSP_HAVE_DNNL
  LDLIBS += -ldnnl
endif
LDFLAGS += $(SANFLAGS)

PROTOS   := $(wildcard proto/*.proto)
PROTO_C  := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTOS))
PROTO_H  := $(PROTO_C:.c=.h)
ENGINE_SRC := $(sort $(wildcard engine/core/*.c engine/cpu/*.c engine/ops/*.c engine/io/*.c))
OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(ENGINE_SRC)) $(patsubst %.c,%.o,$(PROTO_C))

# CUDA=1: engine/cuda/*.cu (nvcc) and engine/cuda/*.c (cc, no CUDA headers: they talk to
# the .cu files through engine/cuda/cuda_api.h). H200 code (sm_90) plus compute_90 PTX
# that newer GPUs JIT-compile. The plain build compiles nothing under engine/cuda.
CUDA_SRC := $(wildcard engine/cuda/*.cu)
CUDA_CSRC := $(wildcard engine/cuda/*.c)
CUDA_ARCH ?= -gencode arch=compute_90,code=[sm_90,compute_90]
NVCCFLAGS := -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra \
             -Werror all-warnings -Iengine/include -Iengine -Iengine/cuda $(NVCC_EXTRA)
ifeq ($(CUDA),1)
  CFLAGS += -DSP_HAVE_CUDA
  OBJS += $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_SRC)) $(patsubst %.c,$(BUILD)/obj/%.o,$(CUDA_CSRC))
  LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
endif

LIB_SO := $(BUILD)/libspore.so
LIB_A  := $(BUILD)/libspore.a
CDEF   := bindings/ffi/cdef.lua
DIST_CDEF := bindings/ffi/dist_cdef.lua
TEST_ENGINE := $(BUILD)/test_engine
HOST_LIB := $(BUILD)/libspore_host.so
HOST_EXAMPLE := $(BUILD)/spore_host_example
HOST_BINS := $(HOST_EXAMPLE) $(BUILD)/frame_loop $(BUILD)/host_check
LUAJIT_CFLAGS := $(shell pkg-config --cflags luajit)
LUAJIT_LIBS := $(shell pkg-config --libs luajit)

# spore.dist (engine/dist): a library of its own over Open MPI, never linked into libspore.so;
# built by `make` when Open MPI's headers are installed (make deps), skipped with a notice otherwise.
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null || mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null || mpicc --showme:link 2>/dev/null)
HAVE_MPI   := $(shell printf '\043include <mpi.h>\n' | $(CC) $(MPI_CFLAGS) -E -x c - >/dev/null 2>&1 && echo 1)
DIST_SRC   := engine/dist/dist.c
DIST_CFLAGS := -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -D_GNU_SOURCE -fvisibility=hidden -Iengine/dist $(MPI_CFLAGS)
ifeq ($(CUDA),1)
  DIST_SRC += engine/dist/nccl.c
  DIST_CFLAGS += -DSP_DIST_NCCL -Iengine/include -I$(CUDA_HOME)/include
endif
DIST_SO := $(BUILD)/libspore_dist.so
ifeq ($(HAVE_MPI),1)
  DIST_TARGET := $(DIST_SO)
else
  DIST_TARGET := dist-missing
endif

.PHONY: all dist dist-missing deps test test-slow test-cuda demo demo-data bench bench-compare bench-deps repl install docs host clean fuzz cdef check-engine

all: $(LIB_SO) $(LIB_A) $(CDEF) $(DIST_CDEF) host $(DIST_TARGET)

dist: $(DIST_SO)

$(DIST_SO): $(DIST_SRC) engine/dist/spore_dist.h engine/include/spore_engine_ext.h
	@mkdir -p $(BUILD)
	$(CC) $(DIST_CFLAGS) $(SANFLAGS) -shared -o $@ $(DIST_SRC) $(MPI_LIBS) -ldl

dist-missing:
	@echo "make: Open MPI headers not found: $(DIST_SO) (spore.dist) not built; make deps installs them"

deps:
	@bash scripts/deps.sh

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	$(CC) $(filter-out -Werror -Wextra,$(CFLAGS)) -c $< -o $@

$(BUILD)/obj/%.o: %.c engine/include/spore.h $(wildcard engine/core/*.h engine/cpu/*.h engine/ops/*.h engine/io/*.h engine/cuda/*.h) | $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu engine/include/spore.h engine/cuda/cuda_api.h engine/cuda/cuda_internal.cuh
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

# a missing build directory would link (and run) whichever OpenBLAS the system's alternatives
# name instead, silently: refuse it by name
$(LIB_SO): $(OBJS)
	@test -e $(OPENBLAS_DIR)/libopenblas.so.0 || { echo "BLAS=$(BLAS): $(OPENBLAS_DIR)/libopenblas.so.0 is missing (Debian's libopenblas0-$(BLAS)): run make deps" >&2; exit 1; }
	$(CC) -shared -o $@ $(OBJS) $(LDFLAGS) $(LDLIBS)

$(LIB_A): $(OBJS)
	@rm -f $@
	ar rcs $@ $(OBJS)

$(CDEF): engine/include/spore.h scripts/gen_cdef.lua
	$(LUAJIT) scripts/gen_cdef.lua engine/include/spore.h $@

# the FFI declarations of libspore_dist.so, from engine/dist/spore_dist.h the same way
$(DIST_CDEF): engine/dist/spore_dist.h scripts/gen_cdef.lua
	$(LUAJIT) scripts/gen_cdef.lua engine/dist/spore_dist.h $@

cdef: $(CDEF) $(DIST_CDEF)

# The C host API (bindings/host): libspore_host.so (LuaJIT + spore VMs) next to libspore.so,
# and the example hosts, linked the way an installed host links (pkg-config spore's Libs).
host: $(HOST_LIB) $(HOST_BINS)

$(HOST_LIB): bindings/host/spore_host.c bindings/host/spore_host.h $(LIB_SO)
	$(CC) $(CFLAGS) -Wno-format-truncation -shared -Ibindings/host $(LUAJIT_CFLAGS) -o $@ bindings/host/spore_host.c \
	  -L$(BUILD) -Wl,-rpath,'$$ORIGIN' -lspore $(LUAJIT_LIBS) -lpthread -ldl $(LDFLAGS)

$(BUILD)/frame_loop $(BUILD)/host_check: $(BUILD)/%: bindings/host/examples/%.c bindings/host/spore_host.h $(HOST_LIB)
	$(CC) $(filter-out -fvisibility=hidden,$(CFLAGS)) -Wno-format-truncation -Ibindings/host -DSPORE_EXAMPLES='"$(CURDIR)/bindings/host/examples"' -o $@ $< \
	  -L$(BUILD) -Wl,-rpath,'$$ORIGIN' -lspore_host -lspore -lpthread -lm $(LDFLAGS)

$(HOST_EXAMPLE): bindings/host/example_host.c bindings/host/spore_host.h $(HOST_LIB)
	$(CC) $(filter-out -fvisibility=hidden,$(CFLAGS)) -Wno-format-truncation -Ibindings/host -o $@ $< \
	  -L$(BUILD) -Wl,-rpath,'$$ORIGIN' -lspore_host -lspore $(LDFLAGS)

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

# The CUDA kernels against the CPU's (spec/cuda_spec.lua, tag cuda; pending without a GPU)
test-cuda:
	$(MAKE) CUDA=1 all
	@SPORE_LIB=$(CURDIR)/build/cuda/libspore.so $(LUAJIT) /usr/bin/busted --run=cuda -o utfTerminal spec/cuda_spec.lua

demo: deps all demo-data
	$(LUAJIT) scripts/demo.lua

# The demo's image folder, built from Debian packages at set-up time (never downloaded):
# Fashion-MNIST's test images (dataset-fashion-mnist), 100 a class, written as JPEG files in
# ten class folders by Debian's cjpeg (libjpeg-turbo-progs).
DEMO_IMAGES := out/data/fashion-mnist-jpeg
demo-data: deps $(DEMO_IMAGES)/0_tshirt-top
$(DEMO_IMAGES)/0_tshirt-top: scripts/build_image_folder.lua | $(LIB_SO)
	SPORE_LIB=$(CURDIR)/$(LIB_SO) $(LUAJIT) scripts/build_image_folder.lua --out $(DEMO_IMAGES) --split test --per-class 100 >/dev/null

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

# make install PREFIX=/opt/spore: everything a host or a script needs, found through this
# layout alone (no SPORE_ROOT, LUA_PATH or LD_LIBRARY_PATH):
#   lib/{libspore.so,libspore.a,libspore_host.so}  lib/pkgconfig/spore.pc  include/{spore.h,spore_host.h}
#   share/lua/5.1/spore/  share/spore/{bindings,scripts,examples}/  bin/spore  share/doc/spore/
INSTALL_SCRIPTS := $(filter-out scripts/gen_cdef.lua,$(wildcard scripts/*.lua))
install: all docs
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/lua/5.1/spore $(DESTDIR)$(PREFIX)/share/spore/bindings/ffi \
	  $(DESTDIR)$(PREFIX)/share/spore/bindings/host $(DESTDIR)$(PREFIX)/share/spore/scripts \
	  $(DESTDIR)$(PREFIX)/share/spore/examples $(DESTDIR)$(PREFIX)/share/doc/spore
	install -m 755 $(LIB_SO) $(HOST_LIB) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 644 engine/include/spore.h bindings/host/spore_host.h $(DESTDIR)$(PREFIX)/include/
	if [ -f $(DIST_SO) ]; then install -m 755 $(DIST_SO) $(DESTDIR)$(PREFIX)/lib/; fi
	cp -R lua/spore/. $(DESTDIR)$(PREFIX)/share/lua/5.1/spore/
	install -m 644 bindings/ffi/*.lua $(DESTDIR)$(PREFIX)/share/spore/bindings/ffi/
	install -m 644 bindings/host/vm.lua $(DESTDIR)$(PREFIX)/share/spore/bindings/host/
	install -m 644 $(INSTALL_SCRIPTS) $(DESTDIR)$(PREFIX)/share/spore/scripts/
	install -m 755 scripts/spore $(DESTDIR)$(PREFIX)/bin/spore
	install -m 644 bindings/host/examples/*.c bindings/host/examples/*.lua bindings/host/examples/Makefile \
	  $(DESTDIR)$(PREFIX)/share/spore/examples/
	sed -e 's|@PREFIX@|$(PREFIX)|g' scripts/spore.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/spore.pc
	install -m 644 README.md LICENSE docs/ARCHITECTURE.md $(DESTDIR)$(PREFIX)/share/doc/spore/
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/spore/api && cp -R build/docs $(DESTDIR)$(PREFIX)/share/doc/spore/api

# API reference from the doc comments (LDoc, Debian's lua-ldoc) into build/docs/index.html
DOC_SRC := $(shell find lua/spore bindings/ffi bindings/host -name '*.lua' 2>/dev/null) docs/config.ld
docs: build/docs/index.html
build/docs/index.html: $(DOC_SRC)
	@command -v ldoc >/dev/null || bash scripts/deps.sh
	@mkdir -p build/docs
	ldoc -c docs/config.ld . >build/docs.log 2>&1 || { cat build/docs.log; exit 1; }
	@echo "docs: build/docs/index.html ($$(grep -c 'warning' build/docs.log) ldoc warnings, see build/docs.log)"

fuzz:
	@bash scripts/fuzz.sh

clean:
	rm -rf build $(CDEF) $(DIST_CDEF)

# checkpoint io: generated protobuf-c sources are never deleted as intermediates
.SECONDARY: $(PROTO_C) $(PROTO_H)
