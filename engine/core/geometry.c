/* geometry.c — Conv2d / Pool2d output size and per-side padding from MindSpore's pad_mode
 * rules, computed once here and queried from Lua (lua/spore/nn/conv.lua, pooling.lua).
 *
 *   same : out = ceil(in / stride); total = max((out-1)*stride + (k-1)*dil + 1 - in, 0);
 *          top/left = floor(total/2), bottom/right = the rest (odd pixel bottom/right, as TF)
 *   valid: no padding
 *   pad  : the caller's {top, bottom, left, right}
 * then out = floor((in + p_lo + p_hi - (k-1)*dil - 1) / stride) + 1, which for "same" equals
 * ceil(in/stride) and for "valid" equals ceil((in - (k-1)*dil) / stride). */
#include "internal.h"

static const char *mode_name(int m) {
    return m == SP_PAD_SAME ? "same" : m == SP_PAD_VALID ? "valid" : m == SP_PAD_PAD ? "pad" : "?";
}

/* One spatial axis. */
static sp_status axis(const char *op, const char *dim, int64_t n, int k, int s, int d, int mode, const int *pin,
                      int64_t *out, int *lo, int *hi) {
    int64_t eff = (int64_t)d * (k - 1) + 1; /* the dilated kernel's extent */
    int64_t a = 0, b = 0;
    if (mode == SP_PAD_SAME) {
        int64_t o = (n + s - 1) / s;
        int64_t total = (o - 1) * s + eff - n;
        if (total < 0) total = 0;
        a = total / 2;
        b = total - a;
    } else if (mode == SP_PAD_PAD) {
        a = pin[0];
        b = pin[1];
    }
    int64_t padded = n + a + b;
    if (padded < eff)
        return sp_error(SP_EINVAL, "%s: input %s %lld (padded %lld, pad_mode '%s') is smaller than the %skernel extent %lld",
                        op, dim, (long long)n, (long long)padded, mode_name(mode), d > 1 ? "dilated " : "",
                        (long long)eff);
    if (a > INT32_MAX || b > INT32_MAX) return sp_error(SP_EINVAL, "%s: %s padding overflows int", op, dim);
    *out = (padded - eff) / s + 1;
    *lo = (int)a;
    *hi = (int)b;
    return SP_OK;
}

static sp_status geometry(const char *op, int64_t h, int64_t w, int kh, int kw, int sh, int sw, int dh, int dw,
                          int mode, const int *pad, int pad_below_kernel, int64_t *out_h, int64_t *out_w, int *pads) {
    if (!out_h || !out_w || !pads) return sp_error(SP_EINVAL, "%s: out_h, out_w and pads must not be NULL", op);
    if (mode != SP_PAD_SAME && mode != SP_PAD_VALID && mode != SP_PAD_PAD)
        return sp_error(SP_EINVAL, "%s: pad_mode must be SP_PAD_SAME (0), SP_PAD_VALID (1) or SP_PAD_PAD (2), got %d",
                        op, mode);
    if (h < 0 || w < 0) return sp_error(SP_EINVAL, "%s: input size %lldx%lld is negative", op, (long long)h, (long long)w);
    if (kh < 1 || kw < 1) return sp_error(SP_EINVAL, "%s: kernel_size must be >= 1, got (%d, %d)", op, kh, kw);
    if (sh < 1 || sw < 1) return sp_error(SP_EINVAL, "%s: stride must be >= 1, got (%d, %d)", op, sh, sw);
    if (dh < 1 || dw < 1) return sp_error(SP_EINVAL, "%s: dilation must be >= 1, got (%d, %d)", op, dh, dw);
    if (mode == SP_PAD_PAD) {
        if (!pad) return sp_error(SP_EINVAL, "%s: pad_mode 'pad' needs padding {top, bottom, left, right}", op);
        for (int i = 0; i < 4; i++) {
            int k = i < 2 ? kh : kw;
            if (pad[i] < 0 || (pad_below_kernel && pad[i] >= k))
                return sp_error(SP_EINVAL, "%s: padding {%d, %d, %d, %d} (top, bottom, left, right) must be %s", op,
                                pad[0], pad[1], pad[2], pad[3],
                                pad_below_kernel ? "in [0, kernel_size)" : ">= 0");
        }
    }
    int64_t oh, ow;
    int p[4];
    sp_status st = axis(op, "height", h, kh, sh, dh, mode, pad, &oh, &p[0], &p[1]);
    if (st) return st;
    st = axis(op, "width", w, kw, sw, dw, mode, pad ? pad + 2 : NULL, &ow, &p[2], &p[3]);
    if (st) return st;
    *out_h = oh;
    *out_w = ow;
    for (int i = 0; i < 4; i++) pads[i] = p[i];
    return SP_OK;
}

sp_status sp_conv2d_geometry(int64_t h, int64_t w, int kh, int kw, int stride_h, int stride_w, int dil_h, int dil_w,
                             int pad_mode, const int *pad, int64_t *out_h, int64_t *out_w, int *pads) {
    return geometry("conv2d geometry", h, w, kh, kw, stride_h, stride_w, dil_h, dil_w, pad_mode, pad, 0, out_h, out_w,
                    pads);
}

sp_status sp_pool2d_geometry(int64_t h, int64_t w, int kh, int kw, int stride_h, int stride_w, int pad_mode,
                             const int *pad, int64_t *out_h, int64_t *out_w, int *pads) {
    return geometry("pool2d geometry", h, w, kh, kw, stride_h, stride_w, 1, 1, pad_mode, pad, 1, out_h, out_w, pads);
}
