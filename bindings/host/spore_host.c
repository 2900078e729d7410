/* spore_host.c — LuaJIT + spore inside a C host: VMs, calls on lent buffers, budgets, memory
 * limits, hot reload, latency statistics (spore_host.h). The Lua half is bindings/host/vm.lua.
 *
 * Every Lua API call that may raise (allocation, a script error) runs under lua_cpcall or
 * lua_pcall, so no error reaches LuaJIT's panic handler (which would exit the process).
 * Budgets: a per-VM watchdog thread, armed at each call, installs a count hook with
 * lua_sethook when the deadline passes (lua_sethook is safe to call asynchronously; it is what
 * luajit's own SIGINT handler does); the hook raises the timeout error at the next interpreted
 * instruction. No signal is used. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "spore_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <omp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SPORE_HOST_MAX_ARGS 32
#define SPORE_HOST_MAX_FILES 64

typedef struct file_stamp {
    char *path;
    long long mtime_ns, size, ino;
} file_stamp;

struct spore_vm {
    lua_State *L;
    lua_Alloc base_alloc;
    void *base_ud;
    /* memory */
    size_t limit;
    size_t lua_bytes;
    int64_t engine_bytes;   /* charged across calls */
    int64_t thread_mark;    /* sp_mem_thread_bytes() when the current charged section began */
    int charging;           /* inside a charged section (engine bytes move on this thread) */
    int grace;              /* housekeeping: the limit does not apply */
    int mem_hit;            /* the limit was passed in this call */
    int mem_over;           /* ... and the guard hook is set to raise the error */
    /* registry refs */
    int ref_vm, ref_env, ref_results, ref_lend, ref_handle, ref_traceback;
    /* options */
    char *script, *path;
    double budget_ms, load_budget_ms, watch_interval_ms;
    int watch, threads, jit_off;
    /* watchdog */
    int has_watchdog;
    pthread_t watchdog;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closing, armed, fired, wd_indefinite;
    struct timespec deadline;
    int timed_out;          /* the hook raised the timeout in this call */
    double active_budget_ms;
    const char *active_what;
    /* state */
    int in_call;
    char err[4096];
    char reload_err[4096];
    /* results kept alive until the next call */
    sp_tensor *result_tensors[SPORE_HOST_MAX_ARGS];
    int n_result_tensors;
    /* reload */
    file_stamp files[SPORE_HOST_MAX_FILES];
    int nfiles;
    double last_watch;
    /* stats */
    uint64_t calls, errors, timeouts, reloads, reload_failures;
    float lat_us[SPORE_STATS_WINDOW];
    double lat_sum_us;
};

static _Thread_local char tl_open_err[4096];
static void guard_hook(lua_State *L, lua_Debug *ar);

/* ------------------------------------------------------------------ helpers */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int set_err(spore_vm *vm, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vm->err, sizeof vm->err, fmt, ap);
    va_end(ap);
    return status;
}

const char *spore_status_name(int s) {
    static const char *names[] = {"SPORE_OK", "SPORE_EINVAL", "SPORE_ELOAD", "SPORE_ENOFUNC",
                                  "SPORE_ERUN", "SPORE_TIMEOUT", "SPORE_ENOMEM", "SPORE_ERESULT"};
    return (s >= 0 && s < (int)(sizeof names / sizeof names[0])) ? names[s] : "SPORE_?";
}

const char *spore_vm_error(const spore_vm *vm) { return vm ? vm->err : tl_open_err; }
const char *spore_vm_reload_error(const spore_vm *vm) { return vm ? vm->reload_err : ""; }
struct lua_State *spore_vm_lua(spore_vm *vm) { return vm ? vm->L : NULL; }

/* ------------------------------------------------------------------ memory */

static int64_t engine_now(const spore_vm *vm) {
    return vm->engine_bytes + (vm->charging ? sp_mem_thread_bytes() - vm->thread_mark : 0);
}

static void charge_begin(spore_vm *vm) {
    vm->thread_mark = sp_mem_thread_bytes();
    vm->charging = 1;
}
static void charge_end(spore_vm *vm) {
    vm->engine_bytes += sp_mem_thread_bytes() - vm->thread_mark;
    vm->charging = 0;
}

static void *vm_alloc(void *ud, void *p, size_t osize, size_t nsize) {
    spore_vm *vm = ud;
    if (nsize > osize && vm->limit && !vm->grace) {
        int64_t total = (int64_t)(vm->lua_bytes + (nsize - osize)) + engine_now(vm);
        if (total > (int64_t)vm->limit) {
            /* Past the limit: the error is raised at the next Lua instruction (the guard hook),
             * where no half-made tensor can leak; only an allocation past the limit plus a
             * margin is refused here and now. */
            vm->mem_hit = 1;
            if (!vm->mem_over && vm->L) {
                vm->mem_over = 1;
                lua_sethook(vm->L, guard_hook, LUA_MASKCOUNT, 1);
            }
            size_t margin = vm->limit / 8 > ((size_t)4 << 20) ? vm->limit / 8 : ((size_t)4 << 20);
            if (total > (int64_t)(vm->limit + margin)) return NULL;
        }
    }
    void *r = vm->base_alloc(vm->base_ud, p, osize, nsize);
    if (r || nsize == 0) vm->lua_bytes += nsize - osize; /* wraps correctly when shrinking */
    return r;
}

static void mem_message(spore_vm *vm, const char *what) {
    snprintf(vm->err, sizeof vm->err,
             "%s: memory limit of %zu bytes passed (Lua heap %zu bytes + engine %lld bytes)",
             what, vm->limit, vm->lua_bytes, (long long)engine_now(vm));
}

/* After the limit was passed: collect the garbage; 1 when the VM is still over the limit. */
static int gc_p(lua_State *L) {
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
static int still_over(spore_vm *vm) {
    vm->grace = 1;
    if (lua_cpcall(vm->L, gc_p, NULL)) lua_pop(vm->L, 1); /* a finaliser that raised: ignored */
    vm->grace = 0;
    return (int64_t)vm->lua_bytes + engine_now(vm) > (int64_t)vm->limit;
}

/* ------------------------------------------------------------------ budgets */

/* spore's own Lua (lua/spore, bindings/ffi, bindings/host/vm.lua, the boot chunk): the guard
 * never raises there, so that a tensor is never left half-made (engine memory allocated, its
 * Lua owner not yet) and a failed reload always restores the previous version. */
static int is_library(const char *src) {
    if (src[0] == '=') return strncmp(src, "=(script)", 9) != 0 && strncmp(src, "=(host)", 7) != 0;
    return strstr(src, "/lua/spore/") || strstr(src, "/lua/5.1/spore/") || strstr(src, "bindings/ffi/") ||
           strstr(src, "bindings/host/vm.lua");
}

/* Raises the timeout or memory error at the next interpreted instruction of script code
 * (never in spore's own Lua, see is_library). */
static void guard_hook(lua_State *L, lua_Debug *ar) {
    void *ud;
    lua_getallocf(L, &ud);
    spore_vm *vm = ud;
    pthread_mutex_lock(&vm->mu);
    int fired = vm->fired;
    pthread_mutex_unlock(&vm->mu);
    if (!fired && !vm->mem_over) return;
    if (lua_getinfo(L, "S", ar) && is_library(ar->source)) return;
    if (fired) {
        vm->timed_out = 1;
        luaL_error(L, "%s: time budget of %g ms exceeded (interrupted)", vm->active_what, vm->active_budget_ms);
    }
    luaL_error(L, "memory limit of %zu bytes passed", vm->limit);
}

/* The watchdog sleeps until the armed call's deadline. Between calls it lingers (a timed
 * wait of one budget) so that arming the next call needs no wake-up: a call signals the
 * condition only when the watchdog sleeps without a deadline (the VM idle for a while). */
static void *watchdog_main(void *arg) {
    spore_vm *vm = arg;
    pthread_mutex_lock(&vm->mu);
    int idle_rounds = 0;
    while (!vm->closing) {
        struct timespec dl;
        if (vm->armed && !vm->fired) {
            dl = vm->deadline;
            idle_rounds = 0;
        } else if (idle_rounds < 100) {
            clock_gettime(CLOCK_MONOTONIC, &dl);
            long long ns = (long long)((vm->budget_ms > 1 ? vm->budget_ms : 1) * 1e6);
            dl.tv_sec += ns / 1000000000LL;
            dl.tv_nsec += ns % 1000000000LL;
            if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
            idle_rounds++;
        } else {
            vm->wd_indefinite = 1;
            pthread_cond_wait(&vm->cv, &vm->mu);
            vm->wd_indefinite = 0;
            idle_rounds = 0;
            continue;
        }
        int rc = pthread_cond_timedwait(&vm->cv, &vm->mu, &dl);
        (void)rc;
        if (vm->armed && !vm->fired) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > vm->deadline.tv_sec ||
                (now.tv_sec == vm->deadline.tv_sec && now.tv_nsec >= vm->deadline.tv_nsec)) {
                vm->fired = 1;
                lua_sethook(vm->L, guard_hook, LUA_MASKCOUNT, 1);
            }
        }
    }
    pthread_mutex_unlock(&vm->mu);
    return NULL;
}

static int start_watchdog(spore_vm *vm) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&vm->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&vm->watchdog, NULL, watchdog_main, vm) != 0) {
        pthread_cond_destroy(&vm->cv);
        return 1;
    }
    vm->has_watchdog = 1;
    return 0;
}

int spore_vm_set_budget(spore_vm *vm, double budget_ms) {
    if (!vm) return SPORE_EINVAL;
    if (!(budget_ms >= 0)) return set_err(vm, SPORE_EINVAL, "spore_vm_set_budget: budget_ms must be >= 0");
    if (vm->in_call) return set_err(vm, SPORE_EINVAL, "spore_vm_set_budget: the VM is in a call");
    if (budget_ms > 0 && !vm->has_watchdog && start_watchdog(vm))
        return set_err(vm, SPORE_ENOMEM, "spore_vm_set_budget: cannot start the budget watchdog thread");
    pthread_mutex_lock(&vm->mu); /* the watchdog reads it */
    vm->budget_ms = budget_ms;
    pthread_mutex_unlock(&vm->mu);
    return SPORE_OK;
}

static void arm(spore_vm *vm, double budget_ms, const char *what) {
    vm->timed_out = 0;
    if (budget_ms <= 0 || !vm->has_watchdog) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)(budget_ms * 1e6);
    ts.tv_sec += ns / 1000000000LL;
    ts.tv_nsec += ns % 1000000000LL;
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    vm->active_budget_ms = budget_ms;
    vm->active_what = what;
    pthread_mutex_lock(&vm->mu);
    vm->deadline = ts;
    vm->armed = 1;
    vm->fired = 0;
    if (vm->wd_indefinite) pthread_cond_signal(&vm->cv);
    pthread_mutex_unlock(&vm->mu);
}

static void disarm(spore_vm *vm) {
    int fired = 0;
    if (vm->has_watchdog) {
        pthread_mutex_lock(&vm->mu);
        fired = vm->fired;
        vm->armed = 0;
        vm->fired = 0;
        pthread_mutex_unlock(&vm->mu);
    }
    if (fired || vm->mem_over) lua_sethook(vm->L, NULL, 0, 0);
    vm->mem_over = 0;
}

/* ------------------------------------------------------------------ finding spore */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* The Lua directory (holding spore/init.lua) under root: a tree (root/lua) or a prefix
 * (root/share/lua/5.1). */
static int lua_dir_of(const char *root, char *out, size_t n) {
    static const char *subs[] = {"/lua", "/share/lua/5.1"};
    for (size_t i = 0; i < 2; i++) {
        char probe[PATH_MAX];
        snprintf(out, n, "%s%s", root, subs[i]);
        snprintf(probe, sizeof probe, "%s/spore/init.lua", out);
        if (file_exists(probe)) return 1;
    }
    return 0;
}

static int find_lua_dir(const char *root, char *out, size_t n, char *tried, size_t tn) {
    tried[0] = 0;
    if (root) {
        if (lua_dir_of(root, out, n)) return 1;
        snprintf(tried, tn, "%s (opts.root)", root);
        return 0;
    }
    Dl_info info;
    if (dladdr((void *)spore_vm_open, &info) && info.dli_fname) {
        char self[PATH_MAX];
        if (!realpath(info.dli_fname, self)) snprintf(self, sizeof self, "%s", info.dli_fname);
        char *slash = strrchr(self, '/');
        if (slash) *slash = 0;
        /* <prefix>/lib/libspore_host.so, <tree>/build[/tsan]/libspore_host.so */
        char cand[PATH_MAX];
        for (int up = 1; up <= 3; up++) {
            size_t len = strlen(self);
            snprintf(cand, sizeof cand, "%s", self);
            for (int k = 0; k < up; k++) {
                char *s = strrchr(cand, '/');
                if (!s) break;
                *s = 0;
            }
            if (lua_dir_of(cand, out, n)) return 1;
            (void)len;
        }
        snprintf(tried, tn, "the install layout around %s", self);
    }
    const char *env = getenv("SPORE_ROOT");
    if (env && *env) {
        if (lua_dir_of(env, out, n)) return 1;
        size_t l = strlen(tried);
        snprintf(tried + l, tn - l, ", $SPORE_ROOT=%s", env);
    }
    return 0;
}

/* libspore must be in the global symbol scope for the FFI's ffi.C (a host that dlopen()ed
 * libspore_host with RTLD_LOCAL). */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void promote_libspore(void) {
    Dl_info info;
    if (dladdr((void *)sp_version, &info) && info.dli_fname) {
        void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_GLOBAL);
        (void)h; /* kept: the library stays loaded with the process */
    }
}

/* ------------------------------------------------------------------ file stamps */

static void stamp_of(const char *path, file_stamp *f) {
    struct stat st;
    if (stat(path, &st) == 0) {
        f->mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        f->size = (long long)st.st_size;
        f->ino = (long long)st.st_ino;
    } else {
        f->mtime_ns = f->size = f->ino = -1;
    }
}

static void clear_files(spore_vm *vm) {
    for (int i = 0; i < vm->nfiles; i++) free(vm->files[i].path);
    vm->nfiles = 0;
}

/* Records the files listed in the table at index idx. */
static void record_files(spore_vm *vm, lua_State *L, int idx) {
    clear_files(vm);
    int n = (int)lua_objlen(L, idx);
    for (int i = 1; i <= n && vm->nfiles < SPORE_HOST_MAX_FILES; i++) {
        lua_rawgeti(L, idx, i);
        const char *p = lua_tostring(L, -1);
        if (p) {
            int dup = 0;
            for (int k = 0; k < vm->nfiles; k++) dup |= strcmp(vm->files[k].path, p) == 0;
            if (!dup) {
                file_stamp *f = &vm->files[vm->nfiles];
                f->path = strdup(p);
                if (f->path) { stamp_of(p, f); vm->nfiles++; }
            }
        }
        lua_pop(L, 1);
    }
}

static int files_changed(spore_vm *vm) {
    for (int i = 0; i < vm->nfiles; i++) {
        file_stamp now;
        stamp_of(vm->files[i].path, &now);
        if (now.mtime_ns != vm->files[i].mtime_ns || now.size != vm->files[i].size || now.ino != vm->files[i].ino)
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ protected bodies */

static int traceback_msgh(lua_State *L) {
    const char *m = lua_tostring(L, 1);
    if (!m) {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
        m = lua_tostring(L, -1);
    }
    luaL_traceback(L, L, m, 1);
    return 1;
}

/* Copies the error on top of the stack into vm->err. */
static void take_error(spore_vm *vm, lua_State *L, const char *what) {
    const char *m = lua_tostring(L, -1);
    snprintf(vm->err, sizeof vm->err, "%s%s%s", what ? what : "", what ? ": " : "", m ? m : "(non-string error)");
}

typedef struct load_ctx {
    spore_vm *vm;
    int ok;
} load_ctx;

/* Runs vm.load(script, path, jit_off) and records the result. */
static int load_p(lua_State *L) {
    load_ctx *c = lua_touserdata(L, 1);
    spore_vm *vm = c->vm;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_vm);
    lua_getfield(L, -1, "load");
    lua_pushstring(L, vm->script);
    if (vm->path) lua_pushstring(L, vm->path); else lua_pushnil(L);
    lua_pushboolean(L, vm->jit_off);
    lua_call(L, 3, 3); /* env | nil, err, files */
    record_files(vm, L, -1);
    if (lua_isnil(L, -3)) {
        lua_pop(L, 1);
        take_error(vm, L, NULL);
        c->ok = 0;
        return 0;
    }
    lua_pushvalue(L, -3);
    if (vm->ref_env != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, vm->ref_env);
    vm->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
    c->ok = 1;
    return 0;
}

/* Loads (or reloads) the script. Returns a status; the previous version stays on failure. */
static int run_load(spore_vm *vm, const char *what) {
    load_ctx c = {vm, 0};
    vm->mem_hit = 0;
    charge_begin(vm);
    arm(vm, vm->load_budget_ms, what);
    int rc = lua_cpcall(vm->L, load_p, &c);
    disarm(vm);
    int status = SPORE_OK;
    if (rc) {
        take_error(vm, vm->L, what);
        lua_pop(vm->L, 1);
        status = vm->timed_out ? SPORE_TIMEOUT : rc == LUA_ERRMEM ? SPORE_ENOMEM : SPORE_ELOAD;
    } else if (!c.ok) {
        char m[sizeof vm->err];
        snprintf(m, sizeof m, "%s", vm->err);
        snprintf(vm->err, sizeof vm->err, "%s: %s", what, m);
        status = vm->timed_out ? SPORE_TIMEOUT : SPORE_ELOAD;
    }
    if (vm->mem_hit && status != SPORE_TIMEOUT) {
        if (status != SPORE_OK) mem_message(vm, what);
        int over = still_over(vm);
        if (status != SPORE_OK || over) {
            if (status == SPORE_OK) mem_message(vm, what);
            status = SPORE_ENOMEM;
        }
    } else if (status != SPORE_OK) {
        still_over(vm);
    }
    charge_end(vm);
    return status;
}

typedef struct call_ctx {
    spore_vm *vm;
    const char *fn;
    const char *code; /* dostring */
    const spore_value *args;
    int nargs;
    spore_value *results;
    int nres;
    sp_tensor *lent[SPORE_HOST_MAX_ARGS];
    int nlent;
    int status; /* set when the body fails softly */
} call_ctx;

static void lent_release(call_ctx *c) {
    for (int i = 0; i < c->nlent; i++) {
        sp_tensor_revoke(c->lent[i]); /* every Lua handle on the buffer now fails cleanly */
        sp_tensor_free(c->lent[i]);
    }
    c->nlent = 0;
}

static int push_arg(lua_State *L, call_ctx *c, int i) {
    spore_vm *vm = c->vm;
    const spore_value *a = &c->args[i];
    switch (a->type) {
    case SPORE_NIL: lua_pushnil(L); return 1;
    case SPORE_NUMBER: lua_pushnumber(L, a->number); return 1;
    case SPORE_BOOLEAN: lua_pushboolean(L, a->number != 0); return 1;
    case SPORE_STRING:
        if (!a->string && a->len) { c->status = set_err(vm, SPORE_EINVAL, "argument %d: string is NULL", i + 1); return 0; }
        lua_pushlstring(L, a->string ? a->string : "", a->len);
        return 1;
    case SPORE_TENSOR: {
        if (!a->data) { c->status = set_err(vm, SPORE_EINVAL, "argument %d: tensor data is NULL", i + 1); return 0; }
        if (a->ndim < 0 || a->ndim > SP_MAX_DIMS) {
            c->status = set_err(vm, SPORE_EINVAL, "argument %d: ndim %d is outside 0..%d", i + 1, a->ndim, SP_MAX_DIMS);
            return 0;
        }
        size_t isz = sp_dtype_size(a->dtype);
        if (!isz) { c->status = set_err(vm, SPORE_EINVAL, "argument %d: unknown dtype code %d", i + 1, a->dtype); return 0; }
        size_t n = isz;
        for (int d = 0; d < a->ndim; d++) {
            if (a->shape[d] < 0) {
                c->status = set_err(vm, SPORE_EINVAL, "argument %d: dimension %d has negative size %lld", i + 1,
                                    d + 1, (long long)a->shape[d]);
                return 0;
            }
            n *= (size_t)a->shape[d];
        }
        sp_tensor *h = NULL;
        if (sp_tensor_adopt(&h, a->dtype, a->ndim, a->shape, a->data, n, NULL, NULL) != SP_OK) {
            c->status = set_err(vm, SPORE_EINVAL, "argument %d: %s", i + 1, sp_last_error());
            return 0;
        }
        c->lent[c->nlent++] = h;
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_lend);
        lua_pushlightuserdata(L, h);
        lua_call(L, 1, 1);
        return 1;
    }
    default:
        c->status = set_err(vm, SPORE_EINVAL, "argument %d: unknown type %d", i + 1, a->type);
        return 0;
    }
}

static int take_result(lua_State *L, call_ctx *c, int i, int idx) {
    spore_vm *vm = c->vm;
    spore_value *r = &c->results[i];
    int want_copy = r->type == SPORE_TENSOR && r->data != NULL && r->tensor == NULL;
    int t = lua_type(L, idx);
    if (want_copy && t != LUA_TTABLE) {
        c->status = set_err(vm, SPORE_ERESULT, "%s: result %d is a %s, the host expects a tensor", c->fn, i + 1,
                            lua_typename(L, t));
        return 0;
    }
    switch (t) {
    case LUA_TNIL: r->type = SPORE_NIL; return 1;
    case LUA_TNUMBER: r->type = SPORE_NUMBER; r->number = lua_tonumber(L, idx); return 1;
    case LUA_TBOOLEAN: r->type = SPORE_BOOLEAN; r->number = lua_toboolean(L, idx); return 1;
    case LUA_TSTRING: r->type = SPORE_STRING; r->string = lua_tolstring(L, idx, &r->len); return 1;
    default: break;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_handle);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    const sp_tensor *h = lua_isnumber(L, -1) ? (const sp_tensor *)(intptr_t)lua_tonumber(L, -1) : NULL;
    lua_pop(L, 1);
    if (!h) {
        c->status = set_err(vm, SPORE_ERESULT, "%s: result %d is a %s, not a number, string, boolean or tensor",
                            c->fn, i + 1, lua_typename(L, t));
        return 0;
    }
    if (want_copy) {
        int64_t n = 1;
        for (int d = 0; d < r->ndim; d++) n *= r->shape[d];
        if (sp_tensor_dtype(h) != r->dtype || sp_tensor_numel(h) != n) {
            c->status = set_err(vm, SPORE_ERESULT, "%s: result %d is a %s tensor of %lld elements, the host's slot "
                                "holds %s x %lld", c->fn, i + 1, sp_dtype_name(sp_tensor_dtype(h)),
                                (long long)sp_tensor_numel(h), sp_dtype_name(r->dtype), (long long)n);
            return 0;
        }
        if (sp_tensor_read(h, r->data, (size_t)n * sp_dtype_size(r->dtype)) != SP_OK) {
            c->status = set_err(vm, SPORE_ERESULT, "%s: result %d: %s", c->fn, i + 1, sp_last_error());
            return 0;
        }
        r->tensor = NULL;
        return 1;
    }
    sp_tensor *hc = NULL, *onhost = NULL;
    sp_status hs = sp_tensor_to_device(&onhost, h, SP_DEVICE_CPU);
    if (hs == SP_OK) hs = sp_tensor_contiguous(&hc, onhost);
    sp_tensor_free(onhost);
    if (hs != SP_OK) {
        c->status = set_err(vm, SPORE_ERESULT, "%s: result %d: %s", c->fn, i + 1, sp_last_error());
        return 0;
    }
    vm->result_tensors[vm->n_result_tensors++] = hc;
    r->type = SPORE_TENSOR;
    r->tensor = hc;
    r->data = sp_tensor_data(hc);
    r->dtype = sp_tensor_dtype(hc);
    r->ndim = sp_tensor_shape(hc, r->shape);
    return 1;
}

/* The protected body of a call: look up fn, push the arguments, pcall with a traceback,
 * convert the results. Lua errors of the script come back as c->status. */
static int call_p(lua_State *L) {
    call_ctx *c = lua_touserdata(L, 1);
    spore_vm *vm = c->vm;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_traceback); /* 1: message handler */
    if (c->code) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_vm);
        lua_getfield(L, -1, "compile");
        lua_remove(L, -2);
        lua_pushstring(L, c->code);
        lua_call(L, 1, 2);
        if (lua_isnil(L, -2)) {
            c->status = set_err(vm, SPORE_ELOAD, "%s", lua_tostring(L, -1));
            return 0;
        }
        lua_pop(L, 1);
    } else {
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_env);
        lua_getfield(L, -1, c->fn);
        lua_remove(L, -2);
        if (lua_type(L, -1) != LUA_TFUNCTION) {
            c->status = set_err(vm, SPORE_ENOFUNC, "%s: the script defines no function '%s' (it is %s)", vm->script ? vm->script : "(no script)",
                                c->fn, lua_typename(L, lua_type(L, -1)));
            return 0;
        }
    }
    for (int i = 0; i < c->nargs; i++)
        if (!push_arg(L, c, i)) return 0;
    int rc = lua_pcall(L, c->nargs, c->nres, 1);
    if (rc) {
        take_error(vm, L, NULL);
        c->status = rc == LUA_ERRMEM ? SPORE_ENOMEM : SPORE_ERUN;
        return 0;
    }
    /* results 2..nres+1: kept referenced (strings stay valid) until the next call */
    lua_createtable(L, c->nres, 0);
    for (int i = 0; i < c->nres; i++) {
        lua_pushvalue(L, 2 + i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_rawseti(L, LUA_REGISTRYINDEX, vm->ref_results);
    for (int i = 0; i < c->nres; i++)
        if (!take_result(L, c, i, 2 + i)) return 0;
    return 0;
}

static int is_copy_slot(const spore_value *r) { return r->type == SPORE_TENSOR && r->data && !r->tensor; }

static void record_latency(spore_vm *vm, double us) {
    vm->lat_us[vm->calls % SPORE_STATS_WINDOW] = (float)us;
    vm->lat_sum_us += us;
    vm->calls++;
}

static void maybe_watch(spore_vm *vm) {
    if (!vm->watch || !vm->script) return;
    double t = now_ms();
    if (t - vm->last_watch < vm->watch_interval_ms) return;
    vm->last_watch = t;
    if (!files_changed(vm)) return;
    char keep[sizeof vm->err];
    snprintf(keep, sizeof keep, "%s", vm->err);
    int st = run_load(vm, "reload");
    if (st == SPORE_OK) {
        vm->reloads++;
        vm->reload_err[0] = 0;
    } else {
        vm->reload_failures++;
        snprintf(vm->reload_err, sizeof vm->reload_err, "%s", vm->err);
    }
    snprintf(vm->err, sizeof vm->err, "%s", keep);
}

static int do_call(spore_vm *vm, const char *fn, const char *code, const spore_value *args, int nargs,
                   spore_value *results, int nres) {
    if (!vm) return SPORE_EINVAL;
    if (vm->in_call) return set_err(vm, SPORE_EINVAL, "spore_vm_call: the VM is already in a call (a VM is used by one thread at a time)");
    if (nargs < 0 || nargs > SPORE_HOST_MAX_ARGS || nres < 0 || nres > SPORE_HOST_MAX_ARGS)
        return set_err(vm, SPORE_EINVAL, "spore_vm_call: nargs and nres must be within 0..%d", SPORE_HOST_MAX_ARGS);
    if ((nargs && !args) || (nres && !results)) return set_err(vm, SPORE_EINVAL, "spore_vm_call: args or results is NULL");
    if (!code && (!fn || !*fn)) return set_err(vm, SPORE_EINVAL, "spore_vm_call: no function name");
    double t0 = now_ms();
    vm->in_call = 1;
    maybe_watch(vm);
    for (int i = 0; i < vm->n_result_tensors; i++) sp_tensor_free(vm->result_tensors[i]);
    vm->n_result_tensors = 0;
    for (int i = 0; i < nres; i++)
        if (!is_copy_slot(&results[i])) results[i] = (spore_value){0};
    if (vm->threads > 0) omp_set_num_threads(vm->threads);
    call_ctx c = {.vm = vm, .fn = code ? "dostring" : fn, .code = code, .args = args, .nargs = nargs,
                  .results = results, .nres = nres};
    vm->mem_hit = 0;
    charge_begin(vm);
    arm(vm, vm->budget_ms, c.fn);
    int rc = lua_cpcall(vm->L, call_p, &c);
    disarm(vm);
    lent_release(&c);
    int status = c.status;
    if (rc) {
        take_error(vm, vm->L, c.fn);
        status = rc == LUA_ERRMEM ? SPORE_ENOMEM : SPORE_ERUN;
    }
    lua_settop(vm->L, 0);
    if (status != SPORE_OK && vm->timed_out) status = SPORE_TIMEOUT;
    if (vm->mem_hit && status != SPORE_TIMEOUT) {
        /* the limit was passed: an error, or success if collecting the garbage brings the VM
         * back under it (transient garbage) */
        if (status != SPORE_OK) mem_message(vm, c.fn);
        int over = still_over(vm);
        if (status != SPORE_OK || over) {
            if (status == SPORE_OK) mem_message(vm, c.fn);
            status = SPORE_ENOMEM;
        }
    } else if (status == SPORE_ENOMEM) {
        still_over(vm);
    }
    if (status != SPORE_OK) {
        for (int i = 0; i < nres; i++)
            if (!is_copy_slot(&results[i])) results[i] = (spore_value){0};
    }
    charge_end(vm);
    vm->in_call = 0;
    record_latency(vm, (now_ms() - t0) * 1e3);
    if (status != SPORE_OK) {
        vm->errors++;
        if (status == SPORE_TIMEOUT) vm->timeouts++;
    }
    return status;
}

int spore_vm_call(spore_vm *vm, const char *fn, const spore_value *args, int nargs, spore_value *results, int nres) {
    return do_call(vm, fn, NULL, args, nargs, results, nres);
}

int spore_vm_dostring(spore_vm *vm, const char *code) {
    if (!code) return vm ? set_err(vm, SPORE_EINVAL, "spore_vm_dostring: code is NULL") : SPORE_EINVAL;
    return do_call(vm, NULL, code, NULL, 0, NULL, 0);
}

int spore_vm_reload(spore_vm *vm, int force) {
    if (!vm) return SPORE_EINVAL;
    if (vm->in_call) return set_err(vm, SPORE_EINVAL, "spore_vm_reload: the VM is in a call");
    if (!vm->script) return set_err(vm, SPORE_EINVAL, "spore_vm_reload: the VM has no script");
    if (!force && !files_changed(vm)) return SPORE_OK;
    vm->in_call = 1;
    int st = run_load(vm, "reload");
    vm->in_call = 0;
    if (st == SPORE_OK) {
        vm->reloads++;
        vm->reload_err[0] = 0;
    } else {
        vm->reload_failures++;
        snprintf(vm->reload_err, sizeof vm->reload_err, "%s", vm->err);
    }
    return st;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int spore_vm_stats(const spore_vm *vm, spore_stats *out) {
    if (!vm || !out) return SPORE_EINVAL;
    memset(out, 0, sizeof *out);
    out->calls = vm->calls;
    out->errors = vm->errors;
    out->timeouts = vm->timeouts;
    out->reloads = vm->reloads;
    out->reload_failures = vm->reload_failures;
    out->lua_bytes = vm->lua_bytes;
    out->engine_bytes = vm->engine_bytes;
    out->engine_live_bytes = sp_mem_live_bytes();
    size_t n = vm->calls < SPORE_STATS_WINDOW ? (size_t)vm->calls : SPORE_STATS_WINDOW;
    if (n) {
        float *s = malloc(n * sizeof *s);
        if (!s) return SPORE_ENOMEM;
        memcpy(s, vm->lat_us, n * sizeof *s);
        qsort(s, n, sizeof *s, cmp_float);
        double sum = 0;
        for (size_t i = 0; i < n; i++) sum += s[i];
        out->p50_us = s[(size_t)(0.50 * (double)(n - 1) + 0.5)];
        out->p90_us = s[(size_t)(0.90 * (double)(n - 1) + 0.5)];
        out->p99_us = s[(size_t)(0.99 * (double)(n - 1) + 0.5)];
        out->max_us = s[n - 1];
        out->mean_us = sum / (double)n;
        free(s);
    }
    return SPORE_OK;
}

/* ------------------------------------------------------------------ open / close */

typedef struct boot_ctx {
    spore_vm *vm;
    const char *luadir;
} boot_ctx;

static int boot_p(lua_State *L) {
    boot_ctx *b = lua_touserdata(L, 1);
    spore_vm *vm = b->vm;
    luaL_openlibs(L);
    lua_pushboolean(L, 1);
    lua_setglobal(L, "SPORE_LIB_SELF"); /* the engine is in this process: the bindings use ffi.C */
    static const char boot[] =
        "local luadir = ...\n"
        "package.path = luadir .. '/?.lua;' .. luadir .. '/?/init.lua;' .. package.path\n"
        "spore = require('spore')\n"
        "return require('host.vm')\n";
    if (luaL_loadbuffer(L, boot, sizeof boot - 1, "=spore_host boot")) lua_error(L);
    lua_pushstring(L, b->luadir);
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "lend");
    vm->ref_lend = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "handle");
    vm->ref_handle = luaL_ref(L, LUA_REGISTRYINDEX);
    vm->ref_vm = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, traceback_msgh);
    vm->ref_traceback = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0);
    vm->ref_results = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!vm->script) { /* an environment for spore_vm_dostring */
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_vm);
        lua_getfield(L, -1, "bare");
        lua_pushboolean(L, vm->jit_off);
        lua_call(L, 1, 1);
        vm->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pop(L, 1);
    }
    return 0;
}

static void destroy(spore_vm *vm) {
    if (!vm) return;
    if (vm->has_watchdog) {
        pthread_mutex_lock(&vm->mu);
        vm->closing = 1;
        pthread_cond_signal(&vm->cv);
        pthread_mutex_unlock(&vm->mu);
        pthread_join(vm->watchdog, NULL);
    }
    for (int i = 0; i < vm->n_result_tensors; i++) sp_tensor_free(vm->result_tensors[i]);
    if (vm->L) {
        vm->grace = 1;
        lua_close(vm->L); /* runs the tensors' finalisers */
    }
    if (vm->has_watchdog) {
        pthread_cond_destroy(&vm->cv);
    }
    pthread_mutex_destroy(&vm->mu);
    clear_files(vm);
    free(vm->script);
    free(vm->path);
    free(vm);
}

static int open_fail(spore_vm *vm, int status, const char *msg) {
    snprintf(tl_open_err, sizeof tl_open_err, "spore_vm_open: %s", msg);
    destroy(vm);
    return status;
}

int spore_vm_open(spore_vm **out, const spore_vm_opts *opts) {
    static const spore_vm_opts defaults = {0};
    if (!out) {
        snprintf(tl_open_err, sizeof tl_open_err, "spore_vm_open: the output pointer is NULL");
        return SPORE_EINVAL;
    }
    *out = NULL;
    if (!opts) opts = &defaults;
    if (opts->budget_ms < 0 || opts->load_budget_ms < 0 || opts->watch_interval_ms < 0 || opts->threads < 0 ||
        opts->jit < -1 || opts->jit > 1 || (opts->watch && !opts->script)) {
        snprintf(tl_open_err, sizeof tl_open_err,
                 "spore_vm_open: bad options (budgets, watch_interval_ms and threads must be >= 0, jit -1, 0 or 1, "
                 "watch needs a script)");
        return SPORE_EINVAL;
    }
    pthread_once(&global_once, promote_libspore);
    spore_vm *vm = calloc(1, sizeof *vm);
    if (!vm) {
        snprintf(tl_open_err, sizeof tl_open_err, "spore_vm_open: out of memory");
        return SPORE_ENOMEM;
    }
    pthread_mutex_init(&vm->mu, NULL);
    vm->ref_vm = vm->ref_env = vm->ref_results = vm->ref_lend = vm->ref_handle = vm->ref_traceback = LUA_NOREF;
    vm->limit = opts->memory_limit;
    vm->budget_ms = opts->budget_ms;
    vm->load_budget_ms = opts->load_budget_ms;
    vm->watch = opts->watch;
    vm->watch_interval_ms = opts->watch_interval_ms > 0 ? opts->watch_interval_ms : 100;
    vm->threads = opts->threads;
    vm->jit_off = opts->jit == -1 ||
                  (opts->jit == 0 && (opts->budget_ms > 0 || opts->load_budget_ms > 0 || opts->memory_limit > 0));
    if (opts->threads > 1) sp_config_set_nn_omp(1);

    char luadir[PATH_MAX], tried[2 * PATH_MAX + 64];
    if (!find_lua_dir(opts->root, luadir, sizeof luadir, tried, sizeof tried)) {
        char m[sizeof tried + 128];
        snprintf(m, sizeof m, "cannot find spore's Lua modules (spore/init.lua) in %s", tried[0] ? tried : "(nowhere)");
        return open_fail(vm, SPORE_ELOAD, m);
    }
    if (opts->script) {
        char abs[PATH_MAX];
        if (!realpath(opts->script, abs)) {
            char m[PATH_MAX + 128];
            snprintf(m, sizeof m, "script %s: %s", opts->script, strerror(errno));
            return open_fail(vm, SPORE_ELOAD, m);
        }
        vm->script = strdup(abs);
        if (opts->path) {
            vm->path = strdup(opts->path);
        } else {
            char p[PATH_MAX + 16];
            char *slash = strrchr(abs, '/');
            if (slash) *slash = 0;
            snprintf(p, sizeof p, "%s/?.lua", abs);
            vm->path = strdup(p);
        }
        if (!vm->script || !vm->path) return open_fail(vm, SPORE_ENOMEM, "out of memory");
    }

    lua_State *L0 = luaL_newstate(); /* LuaJIT's own allocator, wrapped to count and limit */
    if (!L0) return open_fail(vm, SPORE_ENOMEM, "cannot create a Lua state");
    vm->base_alloc = lua_getallocf(L0, &vm->base_ud);
    lua_setallocf(L0, vm_alloc, vm);
    vm->L = L0;
    lua_gc(L0, LUA_GCCOLLECT, 0);
    vm->lua_bytes = (size_t)lua_gc(L0, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L0, LUA_GCCOUNTB, 0);

    if ((vm->budget_ms > 0 || vm->load_budget_ms > 0) && start_watchdog(vm))
        return open_fail(vm, SPORE_ENOMEM, "cannot start the budget watchdog thread");

    boot_ctx b = {vm, luadir};
    vm->mem_hit = 0;
    charge_begin(vm);
    int rc = lua_cpcall(L0, boot_p, &b);
    disarm(vm);
    if (!rc && vm->mem_hit && still_over(vm)) {
        charge_end(vm);
        mem_message(vm, "loading spore");
        return open_fail(vm, SPORE_ENOMEM, vm->err);
    }
    charge_end(vm);
    if (rc) {
        char m[sizeof vm->err];
        const char *e = lua_tostring(L0, -1);
        if (vm->mem_hit) {
            mem_message(vm, "loading spore");
            snprintf(m, sizeof m, "%s", vm->err);
        } else {
            snprintf(m, sizeof m, "loading spore from %s: %s", luadir, e ? e : "(error)");
        }
        return open_fail(vm, vm->mem_hit || rc == LUA_ERRMEM ? SPORE_ENOMEM : SPORE_ELOAD, m);
    }
    if (vm->script) {
        int st = run_load(vm, "loading the script");
        if (st != SPORE_OK) return open_fail(vm, st, vm->err);
    }
    vm->last_watch = now_ms();
    *out = vm;
    return SPORE_OK;
}

void spore_vm_close(spore_vm *vm) { destroy(vm); }
