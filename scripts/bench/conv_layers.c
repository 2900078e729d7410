/* conv_layers.c — ResNet50's convolutions one layer at a time through libspore's public ops,
 * under one conv kernel (spore.config{conv_kernel=}), with a 64 MiB cache flush before every
 * timed call (in a network each layer meets its weights and input cold). Prints each layer's
 * mean milliseconds over 3 calls and the total weighted by how often ResNet50 has the layer.
 * Run each kernel in its own process: OpenBLAS's pthread workers and oneDNN's OpenMP workers
 * spin after their calls and would slow whichever runs next.
 *   cc -O2 -Iengine/include -o build/conv_layers scripts/bench/conv_layers.c -Lbuild \
 *      -Wl,-rpath,$PWD/build -lspore
 *   OPENBLAS_CORETYPE=Cooperlake build/conv_layers <batch> <spore|onednn> [fwd|bwd|bf16]
 * (OPENBLAS_CORETYPE as bindings/ffi/lib.lua sets it on AVX-512 CPUs; without it Debian's
 * OpenBLAS 0.3.21 runs its SSE3 kernels on Sapphire Rapids.) */
#include "spore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* in -> out channels, kernel, stride, input size, count in ResNet50 */
typedef struct { int ci, co, k, s, h, cnt; } layer;
static const layer NET[] = {
    {3, 64, 7, 2, 224, 1},    {64, 64, 1, 1, 56, 1},     {64, 64, 3, 1, 56, 3},     {64, 256, 1, 1, 56, 3},
    {64, 256, 1, 1, 56, 1},   {256, 64, 1, 1, 56, 2},    {256, 128, 1, 1, 56, 1},   {128, 128, 3, 2, 56, 1},
    {128, 512, 1, 1, 28, 4},  {256, 512, 1, 2, 56, 1},   {512, 128, 1, 1, 28, 3},   {128, 128, 3, 1, 28, 3},
    {512, 256, 1, 1, 28, 1},  {256, 256, 3, 2, 28, 1},   {256, 1024, 1, 1, 14, 6},  {512, 1024, 1, 2, 28, 1},
    {1024, 256, 1, 1, 14, 5}, {256, 256, 3, 1, 14, 5},   {1024, 512, 1, 1, 14, 1},  {512, 512, 3, 2, 14, 1},
    {512, 2048, 1, 1, 7, 3},  {1024, 2048, 1, 2, 14, 1}, {2048, 512, 1, 1, 7, 2},   {512, 512, 3, 1, 7, 2},
};

static char *flush_buf;
static void flush(void) {
    for (size_t i = 0; i < ((size_t)64 << 20); i += 64) flush_buf[i]++;
}
static sp_tensor *tensor(int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    sp_tensor *t = NULL;
    if (sp_tensor_new(&t, SP_FLOAT32, 4, s) || sp_fill(t, 0.01)) {
        fprintf(stderr, "conv_layers: %s\n", sp_last_error());
        exit(1);
    }
    return t;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: conv_layers <batch> <spore|onednn> [fwd|bwd|bf16]\n");
        return 2;
    }
    int N = atoi(argv[1]);
    const char *mode = argc > 3 ? argv[3] : "fwd";
    int kern = !strcmp(argv[2], "onednn") ? SP_CONV_ONEDNN : !strcmp(argv[2], "spore") ? SP_CONV_SPORE : -1;
    if (N < 1 || kern < 0 || (strcmp(mode, "fwd") && strcmp(mode, "bwd") && strcmp(mode, "bf16"))) {
        fprintf(stderr, "conv_layers: bad arguments (batch >= 1; spore or onednn; fwd, bwd or bf16)\n");
        return 2;
    }
    if (sp_cpu_conv_set_kernel(kern)) {
        fprintf(stderr, "conv_layers: %s\n", sp_last_error());
        return 1;
    }
    flush_buf = calloc((size_t)64 << 20, 1);
    double total = 0;
    for (size_t li = 0; li < sizeof NET / sizeof NET[0]; li++) {
        layer l = NET[li];
        int p = l.k / 2, ho = (l.h + 2 * p - l.k) / l.s + 1;
        sp_tensor *x = tensor(N, l.ci, l.h, l.h), *w = tensor(l.co, l.ci, l.k, l.k), *y = tensor(N, l.co, ho, ho);
        sp_tensor *gx = tensor(N, l.ci, l.h, l.h), *gw = tensor(l.co, l.ci, l.k, l.k);
        double t = 0;
        for (int r = -1; r < 3; r++) { /* one untimed call: oneDNN makes its primitive */
            flush();
            double t0 = now();
            sp_status st = !strcmp(mode, "bwd")  ? sp_conv2d_backward(gx, gw, NULL, y, x, w, l.s, l.s, p, p, p, p, 1, 1, 1)
                           : !strcmp(mode, "bf16") ? sp_conv2d_forward_bf16(y, x, w, NULL, l.s, l.s, p, p, p, p, 1, 1, 1)
                                                   : sp_conv2d_forward(y, x, w, NULL, l.s, l.s, p, p, p, p, 1, 1, 1);
            if (st) {
                fprintf(stderr, "conv_layers: %s\n", sp_last_error());
                return 1;
            }
            if (r >= 0) t += now() - t0;
        }
        t /= 3;
        total += t * l.cnt;
        printf("%4d -> %4d  %dx%d/%d  %3dx%-3d x%d  %8.3f ms\n", l.ci, l.co, l.k, l.k, l.s, l.h, l.h, l.cnt, t * 1e3);
        sp_tensor *all[] = {x, w, y, gx, gw};
        for (int i = 0; i < 5; i++) sp_tensor_free(all[i]);
    }
    printf("batch %d, %s, %s: %.1f ms over ResNet50's convolutions\n", N, argv[2], mode, total * 1e3);
    free(flush_buf);
    return 0;
}
