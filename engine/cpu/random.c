/* random.c — CPU kernels of the seeded random fills (checked by engine/ops/fill_ops.c):
 * seeded generators: a splitmix64-expanded xoshiro256** stream whose
 * whole state is one caller-held uint64 (advanced on every call), so runs are
 * reproducible from a seed without global state. */
#include "core/internal.h"
#include "cpu/cpu_kernels.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct { uint64_t s[4]; } xo;
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static uint64_t xo_next(xo *r) {
    uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
    return res;
}
static void xo_seed(xo *r, uint64_t *state) {
    uint64_t x = *state;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    *state = x; /* advance the caller's state so the next call draws a new stream */
}
static inline double uniform01(xo *r) { return (double)(xo_next(r) >> 11) * 0x1.0p-53; }

sp_status sp_cpu_rand_uniform(sp_tensor *t, double lo, double hi, uint64_t *state) {
    xo r;
    xo_seed(&r, state);
    int64_t n = sp_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) sp_store_f64(t->dtype, sp_elem_ptr(t, i), lo + (hi - lo) * uniform01(&r));
    return SP_OK;
}

static double gauss(xo *r) {
    double u1 = uniform01(r), u2 = uniform01(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

sp_status sp_cpu_rand_normal(sp_tensor *t, double mean, double std, uint64_t *state) {
    xo r;
    xo_seed(&r, state);
    int64_t n = sp_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) sp_store_f64(t->dtype, sp_elem_ptr(t, i), mean + std * gauss(&r));
    return SP_OK;
}

sp_status sp_cpu_rand_trunc_normal(sp_tensor *t, double mean, double std, uint64_t *state) {
    xo r;
    xo_seed(&r, state);
    int64_t n = sp_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double g;
        do g = gauss(&r); while (g < -2.0 || g > 2.0);
        sp_store_f64(t->dtype, sp_elem_ptr(t, i), mean + std * g);
    }
    return SP_OK;
}
