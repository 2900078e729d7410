/* copy.c — the CPU copy/convert kernel (device table entry `copy`; checks are done by
 * sp_tensor_copy). Float->int truncates toward zero, saturating; NaN->int gives 0. */
#include "core/internal.h"

#include <string.h>

static void byte_strides(const sp_tensor *t, int64_t *out) {
    int64_t sz = (int64_t)sp_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) out[d] = t->strides[d] * sz;
}

static void convert_one(int dd, char *dp, int sd, const char *sp) {
    if (dd == sd) { memcpy(dp, sp, sp_dtype_size(dd)); return; }
    if (sp_dtype_is_int(dd) && sp_dtype_is_int(sd) && dd != SP_BOOL && sd != SP_BOOL)
        sp_store_i64(dd, dp, sp_load_i64(sd, sp));
    else if (dd == SP_BFLOAT16 && sd == SP_FLOAT32) { float f; memcpy(&f, sp, 4); uint16_t h = sp_f32_to_bf16(f); memcpy(dp, &h, 2); }
    else sp_store_f64(dd, dp, sp_load_f64(sd, sp));
}

sp_status sp_cpu_copy(sp_tensor *dst, const sp_tensor *src) {
    int64_t n = sp_tensor_numel(dst);
    if (n == 0) return SP_OK;
    if (sp_tensor_is_contiguous(dst) && sp_tensor_is_contiguous(src)) {
        char *dp = SP_DATA(dst);
        const char *sp = SP_DATA(src);
        if (dst->dtype == src->dtype) { memmove(dp, sp, (size_t)n * sp_dtype_size(dst->dtype)); return SP_OK; }
        size_t ds = sp_dtype_size(dst->dtype), ss = sp_dtype_size(src->dtype);
        if (dst->dtype == SP_FLOAT32 && src->dtype == SP_FLOAT16) {
            for (int64_t i = 0; i < n; i++) ((float *)dp)[i] = sp_f16_to_f32(((const uint16_t *)sp)[i]);
        } else if (dst->dtype == SP_FLOAT32 && src->dtype == SP_BFLOAT16) {
            for (int64_t i = 0; i < n; i++) ((float *)dp)[i] = sp_bf16_to_f32(((const uint16_t *)sp)[i]);
        } else if (dst->dtype == SP_FLOAT32 && src->dtype == SP_FLOAT64) {
            for (int64_t i = 0; i < n; i++) ((float *)dp)[i] = (float)((const double *)sp)[i];
        } else if (dst->dtype == SP_FLOAT64 && src->dtype == SP_FLOAT32) {
            for (int64_t i = 0; i < n; i++) ((double *)dp)[i] = ((const float *)sp)[i];
        } else {
            for (int64_t i = 0; i < n; i++) convert_one(dst->dtype, dp + i * ds, src->dtype, sp + i * ss);
        }
        return SP_OK;
    }
    char *base[2] = {SP_DATA(dst), (char *)SP_DATA(src)}; /* src: read only */
    int64_t strides[2][SP_MAX_DIMS];
    byte_strides(dst, strides[0]);
    byte_strides(src, strides[1]);
    sp_iter it;
    sp_iter_init(&it, dst->ndim, dst->shape, 2, base, strides);
    do convert_one(dst->dtype, it.ptr[0], src->dtype, it.ptr[1]);
    while (sp_iter_next(&it));
    return SP_OK;
}
