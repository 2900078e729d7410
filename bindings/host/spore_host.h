/* spore_host.h — run spore Lua scripts inside a C program that owns its main loop
 * (a game, a simulator, a robot controller).
 *
 *   spore_vm *vm;
 *   spore_vm_opts o = {.script = "policy.lua", .budget_ms = 2, .memory_limit = 256 << 20};
 *   if (spore_vm_open(&vm, &o)) { fprintf(stderr, "%s\n", spore_vm_error(NULL)); ... }
 *   float camera[28 * 28];                                  // yours, filled each frame
 *   spore_value arg = spore_tensor(camera, SP_FLOAT32, 2, (int64_t[]){28, 28});
 *   spore_value out = {0};                                  // result slots are in/out: zero them
 *   if (spore_vm_call(vm, "on_frame", &arg, 1, &out, 1) == SPORE_OK) act((int)out.number);
 *   else fprintf(stderr, "%s\n", spore_vm_error(vm));       // the next call works
 *   spore_vm_close(vm);
 *
 * Link with `pkg-config --cflags --libs spore` (libspore_host + libspore; LuaJIT comes with
 * libspore_host). Built as libspore_host.so by `make`; installed by `make install`.
 *
 * Rules
 *  - Status: every call returns a spore_status (SPORE_OK = 0) and leaves a one-line message
 *    (plus a Lua traceback for script errors) in spore_vm_error(vm). Nothing here aborts or
 *    exits the process: Lua errors, memory errors and budget overruns come back as a status,
 *    `os.exit` in a script is an error, and no signal handler is installed or raised.
 *  - Ownership: a tensor argument wraps the host's buffer without copying. spore never frees
 *    or keeps it: when spore_vm_call returns, every Lua handle on that buffer (views
 *    included) is revoked, and using one later is a Lua error ("...host buffer lent for one
 *    call..."), never a read of freed memory. Results (strings, tensors) are borrowed and
 *    valid until the next call on the same VM; a tensor result slot the host fills with a
 *    buffer (data != NULL) receives a copy instead.
 *  - Threads: a VM is used by one thread at a time (any thread; one VM per thread is the
 *    usual shape). Any number of VMs per process; VMs share nothing mutable beyond the
 *    engine's thread-safe allocator counters and settings.
 *  - Budgets: with budget_ms > 0 a call that runs longer is interrupted at its next Lua
 *    instruction of script code and returns SPORE_TIMEOUT; the VM stays usable. Script code
 *    (script files, the modules they require from the script path, and what they load())
 *    runs in LuaJIT's interpreter in VMs with a budget or a memory limit, so that a loop
 *    cannot hide in a compiled trace, where LuaJIT runs no hooks; spore's own Lua keeps the
 *    JIT and is never interrupted half-way (the error comes when control is back in script
 *    code). A single engine call (one kernel) is not cut: the budget is checked after it.
 *  - Memory: with memory_limit > 0, the Lua heap plus the engine bytes this VM holds may not
 *    pass it: passing it raises an error at the next instruction of script code (an
 *    allocation past the limit plus max(limit/8, 4 MiB) is refused at once), the call returns
 *    SPORE_ENOMEM naming both figures, garbage is collected and the next call works. Engine bytes are charged to
 *    the VM on the thread that runs it (sp_mem_thread_bytes), so the limit is per VM even
 *    with VMs on several threads.
 *  - Reload: spore_vm_reload() re-runs the script when it or a module it required from the
 *    script path changed on disk. A reload that fails (syntax error, error at top level)
 *    keeps the previous version running and says why. Values made through
 *    spore.host.keep(name, make) in the script survive reloads (a loaded network). With
 *    watch = 1 the files' modification times are checked between calls.
 */
#ifndef SPORE_HOST_H
#define SPORE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "spore.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef enum spore_status {
    SPORE_OK = 0,
    SPORE_EINVAL = 1,   /* bad argument from the host: NULL vm, bad tensor, call while in a call */
    SPORE_ELOAD = 2,    /* spore or the script could not be found, compiled or run at top level */
    SPORE_ENOFUNC = 3,  /* the script defines no function of that name */
    SPORE_ERUN = 4,     /* a Lua error inside the call */
    SPORE_TIMEOUT = 5,  /* the call ran past its budget and was interrupted */
    SPORE_ENOMEM = 6,   /* the memory limit was passed (or the system is out of memory) */
    SPORE_ERESULT = 7   /* a result does not fit its slot (type, dtype, element count) */
} spore_status;

typedef enum spore_type {
    SPORE_NIL = 0,
    SPORE_NUMBER = 1,
    SPORE_BOOLEAN = 2,
    SPORE_STRING = 3,
    SPORE_TENSOR = 4
} spore_type;

/* One argument or result. */
typedef struct spore_value {
    int type;               /* spore_type */
    double number;          /* NUMBER; BOOLEAN as 0 or 1 */
    const char *string;     /* STRING (len bytes; NUL-terminated for results) */
    size_t len;
    void *data;             /* TENSOR: host memory, row-major contiguous */
    int dtype;              /* TENSOR: sp_dtype */
    int ndim;               /* TENSOR */
    int64_t shape[SP_MAX_DIMS];
    sp_tensor *tensor;      /* TENSOR result: borrowed handle, valid until the next call */
} spore_value;

static inline spore_value spore_number(double x) {
    spore_value v = {0};
    v.type = SPORE_NUMBER;
    v.number = x;
    return v;
}
static inline spore_value spore_string(const char *s) {
    spore_value v = {0};
    size_t n = 0;
    while (s && s[n]) n++;
    v.type = SPORE_STRING;
    v.string = s;
    v.len = n;
    return v;
}
/* A tensor over host memory (argument), or a result slot to copy into (result). */
static inline spore_value spore_tensor(void *data, int dtype, int ndim, const int64_t *shape) {
    spore_value v = {0};
    v.type = SPORE_TENSOR;
    v.data = data;
    v.dtype = dtype;
    v.ndim = ndim;
    for (int i = 0; i < ndim && i < SP_MAX_DIMS; i++) v.shape[i] = shape[i];
    return v;
}

typedef struct spore_vm_opts {
    const char *script;       /* main script file, run at open (NULL: none; see spore_vm_dostring) */
    const char *path;         /* where the script's require() looks first, "dir/?.lua;...";
                                 NULL: "<script's directory>/?.lua" */
    const char *root;         /* spore's source tree or install prefix; NULL: found from where
                                 libspore_host is (install layout or build tree), then $SPORE_ROOT */
    size_t memory_limit;      /* bytes, Lua heap + this VM's engine bytes; 0: none */
    int threads;              /* OpenMP threads for the engine's kernels in this VM's calls
                                 (0 or 1: serial); > 1 also turns on sp_config_set_nn_omp */
    double budget_ms;         /* per call (spore_vm_call, spore_vm_dostring); 0: none */
    double load_budget_ms;    /* for running the script at open and reload; 0: none */
    int watch;                /* 1: check the script files' mtimes between calls, reload on change */
    double watch_interval_ms; /* at most one check per interval; 0: 100 ms */
    int jit;                  /* script code and the JIT: 0 = compiled unless a budget is set;
                                 1 = always (a budget then cannot stop a compiled loop); -1 = never */
} spore_vm_opts;

enum { SPORE_STATS_WINDOW = 4096 };

typedef struct spore_stats {
    uint64_t calls;            /* spore_vm_call + spore_vm_dostring */
    uint64_t errors;           /* calls that did not return SPORE_OK (timeouts included) */
    uint64_t timeouts;
    double p50_us, p90_us, p99_us, max_us, mean_us; /* latency over the last SPORE_STATS_WINDOW calls */
    size_t lua_bytes;          /* this VM's Lua heap */
    int64_t engine_bytes;      /* engine bytes this VM holds (allocated minus freed in its calls) */
    int64_t engine_live_bytes; /* engine bytes the whole process holds (sp_mem_stats) */
    uint64_t reloads;          /* successful reloads */
    uint64_t reload_failures;
} spore_stats;

typedef struct spore_vm spore_vm;

/* Open a VM: a fresh LuaJIT state with spore loaded (the global `spore`, and `spore.host`),
 * then the script. On failure *vm is NULL and spore_vm_error(NULL) says why. */
int spore_vm_open(spore_vm **vm, const spore_vm_opts *opts);
/* Call the script's global function fn with nargs arguments; up to nres results are written
 * to results[0..nres-1] (missing ones are SPORE_NIL). Result slots are in/out, so initialise
 * them (spore_value r[2] = {{0}}): a slot preset with spore_tensor(buf, dtype, ndim, shape)
 * receives a copy of the returned tensor into buf (same dtype and element count) and stays
 * such a slot for the next call; any other slot is overwritten. */
int spore_vm_call(spore_vm *vm, const char *fn, const spore_value *args, int nargs,
                  spore_value *results, int nres);
/* Run a chunk of Lua in the script's environment (budget and memory limit apply). */
int spore_vm_dostring(spore_vm *vm, const char *code);
/* Re-run the script if it or a module it required from the script path changed on disk
 * (force = 1: re-run anyway). SPORE_OK when nothing changed or the new version runs; on
 * failure the previous version keeps running and spore_vm_error says why. */
int spore_vm_reload(spore_vm *vm, int force);
/* The message of the last reload that failed since the last successful one ("" if none):
 * with watch = 1 this is how a host learns that a watched edit did not take. */
const char *spore_vm_reload_error(const spore_vm *vm);
/* Change the per-call budget (0: none), e.g. a long budget for a one-off init call. Script
 * code keeps the JIT policy chosen at open (opts.jit). */
int spore_vm_set_budget(spore_vm *vm, double budget_ms);
int spore_vm_stats(const spore_vm *vm, spore_stats *out);
/* The last failure's message on vm; with vm == NULL, this thread's last failed open. */
const char *spore_vm_error(const spore_vm *vm);
/* "SPORE_OK", "SPORE_TIMEOUT", ... */
const char *spore_status_name(int status);
/* Close the VM: the Lua state, every tensor it holds, its watchdog thread. NULL is a no-op. */
void spore_vm_close(spore_vm *vm);

/* The Lua state, for hosts that need the raw Lua C API (not needed by the calls above).
 * Calls made through it are not protected by the rules above. */
struct lua_State;
struct lua_State *spore_vm_lua(spore_vm *vm);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
