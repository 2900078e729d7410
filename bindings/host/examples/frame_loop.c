/* frame_loop.c — a game-style host: a fixed-timestep loop that fills a 28x28 "camera" buffer
 * from the MNIST t10k images each frame, calls on_frame(camera) in a spore script running
 * LeNet5 (loaded once from the MindSpore tutorial's checkpoint) and reads the action back.
 *
 *   frame_loop [--mode 1|2|3] [--frames N] [--dt-us US] [--budget-ms MS] [--fixtures DIR]
 *              [--script FILE] [--script2 FILE] [--overhead-calls N] [--json]
 *   mode 1: one VM; per-frame latency p50/p99/max, accuracy of the actions, the API's own cost
 *   mode 2: two VMs on two threads, each with its own script; checks that each gives the same
 *           actions as when it runs alone
 *   mode 3: the script is edited on disk halfway; the VM (watch = 1) picks the change up
 *           between frames without dropping one
 * Build against an installed spore:  cc frame_loop.c $(pkg-config --cflags --libs spore) -pthread
 */
#define _POSIX_C_SOURCE 200809L
#include "spore_host.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef SPORE_EXAMPLES
#define SPORE_EXAMPLES "."
#endif

static const char *fixtures, *script, *script2;
static int frames = 1000, dt_us = 2000, json, overhead_calls = 20000;
static double budget_ms = 5;

typedef struct camera_feed {
    sp_tensor *images, *labels;
    const uint8_t *px;
    const int32_t *lab;
    int64_t n;
} camera_feed;

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double pct(double *sorted, int n, double p) { return sorted[(int)(p * (n - 1) + 0.5)]; }

static int load_feed(camera_feed *f) {
    char p[4096];
    snprintf(p, sizeof p, "%s/mnist/t10k-images-idx3-ubyte.gz", fixtures);
    if (sp_idx_load(&f->images, p)) { fprintf(stderr, "frame_loop: %s\n", sp_last_error()); return 1; }
    snprintf(p, sizeof p, "%s/mnist/t10k-labels-idx1-ubyte.gz", fixtures);
    if (sp_idx_load(&f->labels, p)) { fprintf(stderr, "frame_loop: %s\n", sp_last_error()); return 1; }
    sp_tensor *l32 = NULL;
    if (sp_tensor_clone(&l32, f->labels, SP_INT32)) { fprintf(stderr, "frame_loop: %s\n", sp_last_error()); return 1; }
    sp_tensor_free(f->labels);
    f->labels = l32;
    f->px = sp_tensor_data(f->images);
    f->lab = sp_tensor_data(f->labels);
    f->n = sp_tensor_dim(f->images, 0);
    return 0;
}

static int open_vm(spore_vm **vm, const char *path, int watch) {
    spore_vm_opts o = {.script = path, .budget_ms = budget_ms, .memory_limit = (size_t)512 << 20,
                       .threads = 1, .watch = watch, .watch_interval_ms = 20};
    int st = spore_vm_open(vm, &o);
    if (st) fprintf(stderr, "frame_loop: %s: %s\n", spore_status_name(st), spore_vm_error(NULL));
    return st;
}

static int init_lenet(spore_vm *vm) {
    char ckpt[4096];
    snprintf(ckpt, sizeof ckpt, "%s/mindspore/checkpoint_lenet-1_1875.ckpt", fixtures);
    spore_value a = spore_string(ckpt), r = {0};
    spore_vm_set_budget(vm, 0); /* loading the checkpoint is a one-off: no frame budget */
    int st = spore_vm_call(vm, "init", &a, 1, &r, 1);
    spore_vm_set_budget(vm, budget_ms);
    if (st) fprintf(stderr, "frame_loop: init: %s: %s\n", spore_status_name(st), spore_vm_error(vm));
    return st;
}

/* One fixed-timestep run of `frames` frames on vm; actions[i], versions[i] and the per-frame
 * latency (us) are filled. `edit` (mode 3) is called once at frame frames/2. */
typedef struct run_out {
    int *actions, *versions;
    double *lat;
    int errors, late, correct;
} run_out;

static void run_frames(spore_vm *vm, const camera_feed *f, run_out *o, void (*edit)(void)) {
    uint8_t camera[28 * 28]; /* the host's buffer: spore wraps it each call, never copies or frees it */
    spore_value cam = spore_tensor(camera, SP_UINT8, 2, (int64_t[]){28, 28});
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (int i = 0; i < frames; i++) {
        if (edit && i == frames / 2) edit();
        memcpy(camera, f->px + (i % f->n) * 784, 784);
        spore_value res[2] = {{0}}; /* results are in/out: zeroed slots receive any value */
        double t0 = now_us();
        int st = spore_vm_call(vm, "on_frame", &cam, 1, res, 2);
        double t1 = now_us();
        o->lat[i] = t1 - t0;
        if (st) {
            o->errors++;
            o->actions[i] = -1;
            fprintf(stderr, "frame %d: %s: %s\n", i, spore_status_name(st), spore_vm_error(vm));
        } else {
            o->actions[i] = (int)res[0].number;
            o->versions[i] = res[1].type == SPORE_NUMBER ? (int)res[1].number : 0;
            o->correct += o->actions[i] == f->lab[i % f->n];
        }
        if (o->lat[i] > dt_us) o->late++;
        /* fixed timestep: sleep to the next tick (no catching up when late) */
        tick.tv_nsec += (long)dt_us * 1000;
        while (tick.tv_nsec >= 1000000000L) { tick.tv_sec++; tick.tv_nsec -= 1000000000L; }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > tick.tv_sec || (now.tv_sec == tick.tv_sec && now.tv_nsec > tick.tv_nsec)) tick = now;
        else clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
}

static run_out new_out(void) {
    run_out o = {calloc(frames, sizeof(int)), calloc(frames, sizeof(int)), calloc(frames, sizeof(double)), 0, 0, 0};
    return o;
}
static void free_out(run_out *o) { free(o->actions); free(o->versions); free(o->lat); }

static void report_latency(const char *what, run_out *o) {
    double *s = malloc(frames * sizeof *s);
    memcpy(s, o->lat, frames * sizeof *s);
    qsort(s, frames, sizeof *s, cmp_d);
    printf("%s: latency per frame p50 %.3f ms  p99 %.3f ms  max %.3f ms; %d late (> %d us), %d errors\n", what,
           pct(s, frames, .5) / 1e3, pct(s, frames, .99) / 1e3, s[frames - 1] / 1e3, o->late, dt_us, o->errors);
    free(s);
}

/* ---- mode 1 */
static int mode1(const camera_feed *f) {
    spore_vm *vm;
    if (open_vm(&vm, script, 0) || init_lenet(vm)) return 1;
    run_out o = new_out();
    run_frames(vm, f, &o, NULL);
    report_latency("mode 1", &o);
    printf("mode 1: actions %d/%d correct, accuracy %.4f\n", o.correct, frames, (double)o.correct / frames);
    spore_stats s;
    spore_vm_stats(vm, &s);
    printf("mode 1: spore_vm_stats: %llu calls, p50 %.1f us  p99 %.1f us  max %.1f us; Lua heap %zu KiB, "
           "engine %lld KiB (this VM), %lld KiB (process)\n",
           (unsigned long long)s.calls, s.p50_us, s.p99_us, s.max_us, s.lua_bytes >> 10,
           (long long)s.engine_bytes >> 10, (long long)s.engine_live_bytes >> 10);
    /* the API's own cost: an empty on_frame with the camera tensor, and with no argument */
    uint8_t camera[784] = {0};
    spore_value cam = spore_tensor(camera, SP_UINT8, 2, (int64_t[]){28, 28});
    int n = overhead_calls;
    double best[2] = {1e9, 1e9};
    for (int rep = 0; rep < 5 && n > 0; rep++) {
        for (int k = 0; k < 2; k++) {
            double t0 = now_us();
            for (int i = 0; i < n; i++) spore_vm_call(vm, k ? "on_nothing" : "on_empty", &cam, k ? 0 : 1, NULL, 0);
            double per = (now_us() - t0) / n;
            if (per < best[k]) best[k] = per;
        }
    }
    if (n > 0)
        printf("mode 1: API overhead per empty call: %.2f us with the camera tensor, %.2f us with no argument\n", best[0],
           best[1]);
    double *sl = malloc(frames * sizeof *sl);
    memcpy(sl, o.lat, frames * sizeof *sl);
    qsort(sl, frames, sizeof *sl, cmp_d);
    if (json)
        printf("{\"mode\":1,\"frames\":%d,\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,\"accuracy\":%.4f,"
               "\"correct\":%d,\"errors\":%d,\"late\":%d,\"empty_call_us\":%.3f,\"noarg_call_us\":%.3f}\n",
               frames, pct(sl, frames, .5) / 1e3, pct(sl, frames, .99) / 1e3, sl[frames - 1] / 1e3,
               (double)o.correct / frames, o.correct, o.errors, o.late, best[0], best[1]);
    free(sl);
    int rc = o.errors ? 1 : 0;
    free_out(&o);
    spore_vm_close(vm);
    return rc;
}

/* ---- mode 2 */
typedef struct worker {
    const camera_feed *f;
    const char *script;
    int lenet;
    run_out o;
    int rc;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    spore_vm *vm;
    w->rc = open_vm(&vm, w->script, 0);
    if (!w->rc && w->lenet) w->rc = init_lenet(vm);
    if (!w->rc) run_frames(vm, w->f, &w->o, NULL);
    if (!w->rc) spore_vm_close(vm);
    return NULL;
}

static int mode2(const camera_feed *f) {
    worker alone[2] = {{f, script, 1, new_out(), 0}, {f, script2, 0, new_out(), 0}};
    worker both[2] = {{f, script, 1, new_out(), 0}, {f, script2, 0, new_out(), 0}};
    for (int k = 0; k < 2; k++) worker_main(&alone[k]); /* each alone, one after the other */
    pthread_t th[2];
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, worker_main, &both[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    int same = 1, rc = 0;
    for (int k = 0; k < 2; k++) {
        rc |= alone[k].rc | both[k].rc | alone[k].o.errors | both[k].o.errors;
        same &= memcmp(alone[k].o.actions, both[k].o.actions, frames * sizeof(int)) == 0;
    }
    report_latency("mode 2, thread 1 (lenet)", &both[0].o);
    report_latency("mode 2, thread 2 (brightness)", &both[1].o);
    printf("mode 2: two VMs on two threads: thread 1 accuracy %.4f; actions identical to each VM alone: %s\n",
           (double)both[0].o.correct / frames, same ? "yes" : "NO");
    if (json)
        printf("{\"mode\":2,\"frames\":%d,\"accuracy\":%.4f,\"same_as_alone\":%s,\"errors\":%d}\n", frames,
               (double)both[0].o.correct / frames, same ? "true" : "false", both[0].o.errors + both[1].o.errors);
    for (int k = 0; k < 2; k++) { free_out(&alone[k].o); free_out(&both[k].o); }
    return rc || !same;
}

/* ---- mode 3 */
static char edit_path[4096];
static void edit_script(void) {
    /* what an editor does: write a new file next to it, rename it over the old one */
    FILE *in = fopen(edit_path, "rb");
    char *buf = calloc(1, 1 << 16);
    size_t n = in ? fread(buf, 1, (1 << 16) - 1, in) : 0;
    if (in) fclose(in);
    char *v = strstr(buf, "local VERSION = 1");
    if (v) v[16] = '2';
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", edit_path);
    FILE *out = fopen(tmp, "wb");
    if (out) { fwrite(buf, 1, n, out); fclose(out); rename(tmp, edit_path); }
    free(buf);
}

static int mode3(const camera_feed *f) {
    char dir[] = "/tmp/spore_frame_loop_XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(edit_path, sizeof edit_path, "%s/policy.lua", dir);
    FILE *in = fopen(script, "rb"), *out = fopen(edit_path, "wb");
    if (!in || !out) { fprintf(stderr, "frame_loop: cannot copy %s\n", script); return 1; }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    spore_vm *vm;
    if (open_vm(&vm, edit_path, 1) || init_lenet(vm)) return 1;
    run_out o = new_out();
    run_frames(vm, f, &o, edit_script);
    int first2 = -1, dropped = 0;
    for (int i = 0; i < frames; i++) {
        if (o.actions[i] < 0) dropped++;
        if (first2 < 0 && o.versions[i] == 2) first2 = i;
    }
    spore_stats s;
    spore_vm_stats(vm, &s);
    report_latency("mode 3", &o);
    printf("mode 3: script edited before frame %d; version 2 answered from frame %d; %d frames dropped; "
           "accuracy %.4f; %llu reloads, %llu failed%s%s\n",
           frames / 2, first2, dropped, (double)o.correct / frames, (unsigned long long)s.reloads,
           (unsigned long long)s.reload_failures, s.reload_failures ? ": " : "", spore_vm_reload_error(vm));
    if (json)
        printf("{\"mode\":3,\"frames\":%d,\"edited_at\":%d,\"first_new\":%d,\"dropped\":%d,\"accuracy\":%.4f,\"reloads\":%llu}\n",
               frames, frames / 2, first2, dropped, (double)o.correct / frames, (unsigned long long)s.reloads);
    int rc = dropped || first2 < 0 || o.errors;
    free_out(&o);
    spore_vm_close(vm);
    unlink(edit_path);
    rmdir(dir);
    return rc;
}

int main(int argc, char **argv) {
    int mode = 1;
    fixtures = getenv("SPORE_FIXTURES");
    if (!fixtures) fixtures = "../shared/fixtures";
    script = SPORE_EXAMPLES "/lenet_policy.lua";
    script2 = SPORE_EXAMPLES "/brightness_policy.lua";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!v) { fprintf(stderr, "frame_loop: %s needs a value (see the comment at the top of frame_loop.c)\n", a); return 2; }
        if (!strcmp(a, "--mode")) mode = atoi(v);
        else if (!strcmp(a, "--frames")) frames = atoi(v);
        else if (!strcmp(a, "--dt-us")) dt_us = atoi(v);
        else if (!strcmp(a, "--overhead-calls")) overhead_calls = atoi(v);
        else if (!strcmp(a, "--budget-ms")) budget_ms = atof(v);
        else if (!strcmp(a, "--fixtures")) fixtures = v;
        else if (!strcmp(a, "--script")) script = v;
        else if (!strcmp(a, "--script2")) script2 = v;
        else { fprintf(stderr, "frame_loop: unknown option %s\n", a); return 2; }
        i++;
    }
    if (mode < 1 || mode > 3 || frames < 2) { fprintf(stderr, "frame_loop: --mode 1|2|3, --frames >= 2\n"); return 2; }
    camera_feed f = {0};
    if (load_feed(&f)) return 1;
    const char *base = strrchr(script, '/');
    printf("frame_loop: mode %d, %d frames every %d us, %s\n", mode, frames, dt_us, base ? base + 1 : script);
    int rc = mode == 1 ? mode1(&f) : mode == 2 ? mode2(&f) : mode3(&f);
    sp_tensor_free(f.images);
    sp_tensor_free(f.labels);
    return rc;
}
