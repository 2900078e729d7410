/* host_check.c — checks of the host API's promises, run by spec/host_spec.lua (exit 0 when all
 * hold; one line per check). Needs no fixtures: scripts are written to a temp directory.
 *   host_check [--only NAME]                                                            */
#define _POSIX_C_SOURCE 200809L
#include "spore_host.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int fails, checks;
static spore_vm *last_vm;
static char dir[] = "/tmp/spore_host_check_XXXXXX";

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        checks++;                                                                \
        if (cond) printf("ok   ");                                               \
        else { printf("FAIL "); fails++; }                                       \
        printf(__VA_ARGS__);                                                     \
        if (!(cond)) printf(" [status %s: %.200s]", spore_status_name(st), last_vm ? spore_vm_error(last_vm) : ""); \
        printf("\n");                                                            \
    } while (0)

static const char *write_script(const char *name, const char *text) {
    static char paths[16][512];
    static int k;
    char *p = paths[k++ % 16];
    snprintf(p, 512, "%s/%s", dir, name);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "wb");
    fputs(text, f);
    fclose(f);
    rename(tmp, p);
    return p;
}

static void nap_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *POLICY =
    "local base = spore.host.keep('base', function() loads = (loads or 0) + 1; return {n = 0} end)\n"
    "function double(x) return x * 2 end\n"
    "function boom() local t = nil; return t.field end\n"
    "function spin() while true do end end\n"
    "function spin_pcall() while true do pcall(function() while true do end end) end end\n"
    "function hog() local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1e5) .. i end end\n"
    "function hog_engine() local k = {} for i = 1, 1e6 do k[i] = spore.zeros({1024, 1024}) end end\n"
    "function stash(x) saved = x:reshape{4}; return x:sum() end\n"
    "function use_stash() return saved:sum() end\n"
    "function scale(x, s) x:mul_(s) return x end\n"
    "function echo(...) return ... end\n"
    "function exit() os.exit(3) end\n"
    "function keep_count() return loads end\n";

int main(void) {
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    const char *policy = write_script("policy.lua", POLICY);
    spore_vm *vm;
    spore_vm_opts o = {.script = policy, .budget_ms = 50, .memory_limit = (size_t)64 << 20};
    int st = spore_vm_open(&vm, &o);
    CHECK(st == SPORE_OK, "open a VM with a 50 ms budget and a 64 MiB limit (%s)", st ? spore_vm_error(NULL) : "");
    if (st) return 1;
    last_vm = vm;
    spore_value a = spore_number(21), r[3] = {{0}};

    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].type == SPORE_NUMBER && r[0].number == 42, "numbers in and out: double(21) = %g",
          r[0].number);

    st = spore_vm_call(vm, "boom", NULL, 0, r, 1);
    CHECK(st == SPORE_ERUN && strstr(spore_vm_error(vm), "policy.lua:3:") && strstr(spore_vm_error(vm), "stack traceback"),
          "a Lua error is SPORE_ERUN with file:line and a traceback: %.60s", spore_vm_error(vm));
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 42, "the next call after an error works");

    double t0 = now_ms();
    st = spore_vm_call(vm, "spin", NULL, 0, r, 1);
    double took = now_ms() - t0;
    CHECK(st == SPORE_TIMEOUT && strstr(spore_vm_error(vm), "budget"), "while true do end: SPORE_TIMEOUT after %.1f ms: %.60s",
          took, spore_vm_error(vm));
    CHECK(took < 500, "the timeout comes near the budget (%.1f ms for 50)", took);
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 42, "the next call after a timeout works");
    st = spore_vm_call(vm, "spin_pcall", NULL, 0, r, 1);
    CHECK(st == SPORE_TIMEOUT, "a loop that pcalls the loop is interrupted too (%s)", spore_status_name(st));
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK, "and the VM still works");

    /* memory: a VM with a limit and no budget */
    spore_vm *busy = vm, *mvm;
    spore_vm_opts mo = {.script = policy, .memory_limit = (size_t)64 << 20};
    st = spore_vm_open(&mvm, &mo);
    CHECK(st == SPORE_OK, "open a second VM with the same script, a 64 MiB limit and no budget");
    vm = last_vm = mvm;
    st = spore_vm_call(vm, "hog", NULL, 0, r, 1);
    CHECK(st == SPORE_ENOMEM && strstr(spore_vm_error(vm), "memory limit"), "Lua allocation past the limit: %.100s",
          spore_vm_error(vm));
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK, "the next call after a memory error works");
    st = spore_vm_call(vm, "hog_engine", NULL, 0, r, 1);
    CHECK(st == SPORE_ENOMEM && strstr(spore_vm_error(vm), "engine"), "engine tensors past the limit: %.100s",
          spore_vm_error(vm));
    spore_stats s;
    spore_vm_stats(vm, &s);
    CHECK(s.engine_bytes < (1 << 20), "the garbage is collected after it: engine bytes of this VM %lld",
          (long long)s.engine_bytes);
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK, "the next call after an engine memory error works");
    spore_vm_close(mvm);
    vm = last_vm = busy;

    float buf[4] = {1, 2, 3, 4};
    spore_value t = spore_tensor(buf, SP_FLOAT32, 2, (int64_t[]){2, 2});
    st = spore_vm_call(vm, "stash", &t, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 10, "a lent buffer reads in the call (sum %g)", r[0].number);
    st = spore_vm_call(vm, "use_stash", NULL, 0, r, 1);
    CHECK(st == SPORE_ERUN && strstr(spore_vm_error(vm), "lent"), "a view kept past the call is an error, not a read: %.90s",
          spore_vm_error(vm));
    spore_value sc[2] = {t, spore_number(10)};
    st = spore_vm_call(vm, "scale", sc, 2, r, 1);
    CHECK(st == SPORE_OK && buf[3] == 40 && r[0].type == SPORE_TENSOR && ((float *)r[0].data)[0] == 10,
          "the script writes into the host's buffer in place, no copy (buf[3] = %g)", buf[3]);

    spore_value e[3] = {spore_string("hello"), spore_number(1.5), {.type = SPORE_BOOLEAN, .number = 1}};
    st = spore_vm_call(vm, "echo", e, 3, r, 3);
    CHECK(st == SPORE_OK && r[0].type == SPORE_STRING && !strcmp(r[0].string, "hello") && r[1].number == 1.5 &&
              r[2].type == SPORE_BOOLEAN && r[2].number == 1,
          "strings, numbers and booleans round-trip");
    st = spore_vm_call(vm, "nosuch", NULL, 0, r, 1);
    CHECK(st == SPORE_ENOFUNC && strstr(spore_vm_error(vm), "nosuch"), "an undefined function: %s", spore_vm_error(vm));
    st = spore_vm_call(vm, "exit", NULL, 0, r, 1);
    CHECK(st == SPORE_ERUN && strstr(spore_vm_error(vm), "os.exit"), "os.exit cannot end the host: %.70s", spore_vm_error(vm));
    float small[2];
    spore_value want = spore_tensor(small, SP_FLOAT32, 1, (int64_t[]){2});
    st = spore_vm_call(vm, "scale", sc, 2, &want, 1);
    CHECK(st == SPORE_ERESULT, "a result that does not fit the host's slot: %.90s", spore_vm_error(vm));

    /* reload */
    st = spore_vm_call(vm, "keep_count", NULL, 0, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 1, "kept value made once");
    write_script("policy.lua", "local base = spore.host.keep('base', function() loads = (loads or 0) + 1 end)\n"
                               "function double(x) return x * 3 end\nfunction keep_count() return loads end\n");
    st = spore_vm_reload(vm, 0);
    CHECK(st == SPORE_OK, "reload after an edit (%s)", st ? spore_vm_error(vm) : "");
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 63, "the new version answers (double(21) = %g)", r[0].number);
    st = spore_vm_call(vm, "keep_count", NULL, 0, r, 1);
    CHECK(st == SPORE_OK && r[0].type == SPORE_NIL, "the kept value survived the reload (not made again)");
    write_script("policy.lua", "function double(x) return x * 4 end\nthis is not lua\n");
    st = spore_vm_reload(vm, 0);
    CHECK(st == SPORE_ELOAD && strstr(spore_vm_error(vm), "policy.lua:2"), "a broken edit fails to reload: %.80s",
          spore_vm_error(vm));
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 63, "and the previous version keeps running (double(21) = %g)", r[0].number);
    write_script("policy.lua", "function double(x) return x * 5 end\nerror('top-level failure')\n");
    st = spore_vm_reload(vm, 0);
    CHECK(st == SPORE_ELOAD && strstr(spore_vm_error(vm), "top-level failure"), "an edit failing at top level too: %.80s",
          spore_vm_error(vm));
    st = spore_vm_call(vm, "double", &a, 1, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 63, "previous version still (double(21) = %g)", r[0].number);
    spore_vm_stats(vm, &s);
    CHECK(s.reloads == 1 && s.reload_failures == 2 && s.timeouts == 2 && s.calls > 10 && s.p50_us > 0,
          "stats: %llu calls, %llu errors, %llu timeouts, %llu reloads, %llu failed, p50 %.1f us, Lua %zu KiB",
          (unsigned long long)s.calls, (unsigned long long)s.errors, (unsigned long long)s.timeouts,
          (unsigned long long)s.reloads, (unsigned long long)s.reload_failures, s.p50_us, s.lua_bytes >> 10);
    spore_vm_close(vm);

    /* watch: a module required from the script path, edited */
    write_script("helper.lua", "return {k = 1}\n");
    const char *w = write_script("watched.lua", "local h = require('helper')\nfunction get() return h.k end\n");
    spore_vm_opts wo = {.script = w, .watch = 1, .watch_interval_ms = 1};
    st = spore_vm_open(&vm, &wo);
    last_vm = st ? NULL : vm;
    CHECK(st == SPORE_OK, "open with watch = 1 (%s)", st ? spore_vm_error(NULL) : "");
    st = spore_vm_call(vm, "get", NULL, 0, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 1, "module value 1");
    write_script("helper.lua", "return {k = 2}\n");
    nap_ms(5);
    st = spore_vm_call(vm, "get", NULL, 0, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 2, "an edit of a required module is picked up between calls (k = %g)",
          r[0].number);
    write_script("helper.lua", "return {k = \n");
    nap_ms(5);
    st = spore_vm_call(vm, "get", NULL, 0, r, 1);
    CHECK(st == SPORE_OK && r[0].number == 2 && strstr(spore_vm_reload_error(vm), "helper.lua"),
          "a broken module edit: the call runs the previous version, spore_vm_reload_error says why: %.70s",
          spore_vm_reload_error(vm));
    spore_vm_close(vm);

    last_vm = NULL;
    /* open failures */
    spore_vm_opts bad = {.script = "/nonexistent/x.lua"};
    st = spore_vm_open(&vm, &bad);
    CHECK(st == SPORE_ELOAD && vm == NULL && strstr(spore_vm_error(NULL), "/nonexistent/x.lua"), "missing script: %s",
          spore_vm_error(NULL));
    const char *syn = write_script("syntax.lua", "function (\n");
    spore_vm_opts so = {.script = syn};
    st = spore_vm_open(&vm, &so);
    CHECK(st == SPORE_ELOAD && strstr(spore_vm_error(NULL), "syntax.lua:1"), "syntax error at open: %.80s",
          spore_vm_error(NULL));
    spore_vm_opts tiny = {.memory_limit = 100000};
    st = spore_vm_open(&vm, &tiny);
    CHECK(st == SPORE_ENOMEM && strstr(spore_vm_error(NULL), "memory limit"), "a limit too small to load spore: %.90s",
          spore_vm_error(NULL));
    if (st == SPORE_OK) spore_vm_close(vm);

    /* a top-level infinite loop under a load budget */
    const char *loop = write_script("loop.lua", "while true do end\n");
    spore_vm_opts lo = {.script = loop, .load_budget_ms = 30};
    st = spore_vm_open(&vm, &lo);
    CHECK(st == SPORE_TIMEOUT, "a script looping at top level under load_budget_ms: %s: %.60s", spore_status_name(st),
          spore_vm_error(NULL));

    /* a loop already compiled by the JIT before the budgeted call */
    const char *hot = write_script("hot.lua", "function run(n) local x = 0 for i = 1, n do x = x + i % 7 end return x end\n"
                                              "run(1e6)\nfunction forever() return run(math.huge) end\n");
    spore_vm_opts ho = {.script = hot, .budget_ms = 30};
    st = spore_vm_open(&vm, &ho);
    if (!st) {
        st = spore_vm_call(vm, "forever", NULL, 0, r, 1);
        CHECK(st == SPORE_TIMEOUT, "a hot loop (run 1e6 times at load) is still interrupted: %s", spore_status_name(st));
        spore_vm_close(vm);
    } else CHECK(0, "open hot.lua: %s", spore_vm_error(NULL));

    /* engine threads: an OpenMP team of 2 for this VM's kernels */
    spore_vm_opts to = {.threads = 2};
    st = spore_vm_open(&vm, &to);
    if (!st) {
        st = spore_vm_dostring(vm, "local x = spore.ones{1, 3, 64, 64}; local c = spore.nn.Conv2d(3, 8, 3)\n"
                                   "assert(c(x):shape()[2] == 8)");
        CHECK(st == SPORE_OK, "threads = 2: a convolution runs (%s)", st ? spore_vm_error(vm) : "");
        spore_vm_close(vm);
    } else CHECK(0, "open with threads = 2: %s", spore_vm_error(NULL));

    printf("host_check: %d checks, %d failed\n", checks, fails);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    return fails ? 1 : 0;
}
