/* fill_ops.c — public fill, arange and seeded random fills: checks, then the device's kernel. */
#include "ops/ops_common.h"

sp_status sp_fill(sp_tensor *t, double value) {
    if (!t) return sp_error(SP_EINVAL, "fill: tensor is NULL");
    return OP_CALL(t, fill, t, value);
}

sp_status sp_arange(sp_tensor *t, double start, double step) {
    if (!t) return sp_error(SP_EINVAL, "arange: tensor is NULL");
    if (t->ndim != 1) return sp_error(SP_EINVAL, "arange: expected a 1-D tensor, got rank %d", t->ndim);
    return OP_CALL(t, arange, t, start, step);
}

static sp_status rand_check(const sp_tensor *t, const uint64_t *state, const char *what) {
    if (!t || !state) return sp_error(SP_EINVAL, "%s: NULL argument", what);
    return SP_OK;
}

sp_status sp_rand_uniform(sp_tensor *t, double lo, double hi, uint64_t *state) {
    OP_TRY(rand_check(t, state, "rand_uniform"));
    return OP_CALL(t, rand_uniform, t, lo, hi, state);
}

sp_status sp_rand_normal(sp_tensor *t, double mean, double std, uint64_t *state) {
    OP_TRY(rand_check(t, state, "rand_normal"));
    return OP_CALL(t, rand_normal, t, mean, std, state);
}

sp_status sp_rand_trunc_normal(sp_tensor *t, double mean, double std, uint64_t *state) {
    OP_TRY(rand_check(t, state, "rand_trunc_normal"));
    return OP_CALL(t, rand_trunc_normal, t, mean, std, state);
}
