/* transforms.c — batched image transforms for the dataset pipeline: one call per
 * batch gathers the batch's images, runs the op list on each (float working copy,
 * HWC) and writes the result (HWC or CHW) into a preallocated batch tensor.
 * Also index shuffling and row gathering (labels). */
#include "core/internal.h"
#include "io/image_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sm64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform integer in [0, n) without modulo bias */
static uint64_t below(uint64_t *s, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do r = sm64(s); while (r >= lim);
    return r % n;
}

sp_status sp_shuffle_indices(int64_t *idx, int64_t n, uint64_t *state) {
    if (n < 0 || (n > 0 && (!idx || !state))) return sp_error(SP_EINVAL, "sp_shuffle_indices: bad arguments");
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)below(state, (uint64_t)i + 1);
        int64_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
    return SP_OK;
}

sp_status sp_gather_rows(sp_tensor *dst, const sp_tensor *src, const int64_t *idx, int64_t n) {
    if (!dst || !src || (n > 0 && !idx)) return sp_error(SP_EINVAL, "gather_rows: NULL argument");
    if (src->ndim < 1 || dst->ndim < 1) return sp_error(SP_EINVAL, "gather_rows: src and dst need at least one dim");
    sp_status hs = sp_require_host("gather_rows", src, "src");
    if (!hs) hs = sp_require_host("gather_rows", dst, "dst");
    if (hs) return hs;
    if (!sp_tensor_is_contiguous(src) || !sp_tensor_is_contiguous(dst))
        return sp_error(SP_EINVAL, "gather_rows: src and dst must be contiguous");
    if (dst->shape[0] != n) return sp_error(SP_EINVAL, "gather_rows: dst has %lld rows, expected %lld", (long long)dst->shape[0], (long long)n);
    int64_t rows = src->shape[0];
    int64_t rs = rows ? sp_tensor_numel(src) / rows : 0;
    int64_t rd = n ? sp_tensor_numel(dst) / n : 0;
    if (n && rs != rd) return sp_error(SP_EINVAL, "gather_rows: row sizes differ (src %lld, dst %lld elements)", (long long)rs, (long long)rd);
    size_t ss = sp_dtype_size(src->dtype), ds = sp_dtype_size(dst->dtype);
    const char *sp = sp_host_data(src);
    char *dp = sp_host_data(dst);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = idx[i];
        if (r < 0 || r >= rows) return sp_error(SP_EINVAL, "gather_rows: index %lld out of range [0, %lld)", (long long)r, (long long)rows);
        const char *s = sp + (size_t)(r * rs) * ss;
        char *d = dp + (size_t)(i * rs) * ds;
        if (src->dtype == dst->dtype) { memcpy(d, s, (size_t)rs * ss); continue; }
        for (int64_t k = 0; k < rs; k++) {
            if (sp_dtype_is_int(src->dtype) && sp_dtype_is_int(dst->dtype))
                sp_store_i64(dst->dtype, d + k * ds, sp_load_i64(src->dtype, s + k * ss));
            else
                sp_store_f64(dst->dtype, d + k * ds, sp_load_f64(src->dtype, s + k * ss));
        }
    }
    return SP_OK;
}

/* ---------------------------------------------------------------- ops
 * MindSpore's vision ops (mindspore.dataset.vision, OpenCV underneath) on one image.
 * The working image is uint8 while only geometric ops ran on a uint8 image (Resize runs
 * OpenCV's 11-bit fixed-point INTER_LINEAR, as cv::resize on CV_8U does), float32 after
 * Rescale / Normalize. */

static double unif(uint64_t *s) { return (double)(sm64(s) >> 11) * 0x1.0p-53; }

void sp_img_scratch_free(sp_img_scratch *s) {
    if (!s) return;
    for (int i = 0; i < 2; i++) { free(s->u8[i]); free(s->f32[i]); }
    free(s->taps);
    memset(s, 0, sizeof *s);
}

static void *sgrow(void **p, size_t *cap, size_t need) {
    if (need > *cap) {
        void *q = realloc(*p, need);
        if (!q) return NULL;
        *p = q;
        *cap = need;
    }
    return *p;
}

/* Working image: pixels at u8 or f32, row stride (elements) `rs`; owned = which scratch
 * slot holds it (-1: the caller's source, read-only). */
typedef struct { const unsigned char *u8; const float *f32; int h, w, c, rs, slot; } wimg;

static sp_status out_of_mem(const char *name) { return sp_error(SP_ENOMEM, "%s: out of memory in the image transforms", name); }

/* A writable buffer for n elements of the working kind in the slot not used by im. */
static void *other(sp_img_scratch *s, const wimg *im, int f32, size_t n) {
    int k = im->slot == 0 ? 1 : 0;
    if (f32) return sgrow((void **)&s->f32[k], &s->f32cap[k], n * sizeof(float));
    return sgrow((void **)&s->u8[k], &s->u8cap[k], n);
}
static int other_slot(const wimg *im) { return im->slot == 0 ? 1 : 0; }

/* ---- resize (OpenCV INTER_LINEAR / INTER_NEAREST) */

typedef struct { int x0, x1; short a0, a1; float f0, f1; } rtap;

static short sat_short(float v) {
    long r = lrintf(v);
    return (short)(r < -32768 ? -32768 : r > 32767 ? 32767 : r);
}

/* cv::resize's taps: columns clamp the position at the edges (weight 1 on the edge
 * pixel); rows keep the computed weights and clamp the row indices instead (so an edge
 * row is weighted b0 + b1 in fixed point, rounding as OpenCV does). */
static void linear_taps(rtap *t, int dn, int sn, int rows) {
    double inv = (double)dn / sn, scale = 1.0 / inv;
    for (int d = 0; d < dn; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (rows) {
            t[d].x0 = s < 0 ? 0 : s > sn - 1 ? sn - 1 : s;
            t[d].x1 = s + 1 < 0 ? 0 : s + 1 > sn - 1 ? sn - 1 : s + 1;
        } else {
            if (s < 0) { f = 0; s = 0; }
            if (s >= sn - 1) { f = 0; s = sn - 1; }
            t[d].x0 = s;
            t[d].x1 = s + 1 < sn ? s + 1 : s;
        }
        t[d].f0 = 1.f - f;
        t[d].f1 = f;
        t[d].a0 = sat_short((1.f - f) * 2048);
        t[d].a1 = sat_short(f * 2048);
    }
}

static void nearest_taps(rtap *t, int dn, int sn) {
    double inv = (double)dn / sn, ifx = 1.0 / inv;
    for (int d = 0; d < dn; d++) {
        int s = (int)floor(d * ifx);
        if (s > sn - 1) s = sn - 1;
        t[d].x0 = t[d].x1 = s;
        t[d].f0 = 1; t[d].f1 = 0; t[d].a0 = 2048; t[d].a1 = 0;
    }
}

/* src: region of sh x sw pixels, row stride rs elements. */
static sp_status resize(sp_img_scratch *s, wimg *im, const unsigned char *su8, const float *sf32, int rs, int sh, int sw,
                        int oh, int ow, int interp, const char *name) {
    const int c = im->c;
    size_t need = sizeof(rtap) * (size_t)(oh + ow) + sizeof(int32_t) * 2 * (size_t)ow * c + sizeof(float) * 2 * (size_t)ow * c;
    if (!sgrow(&s->taps, &s->tapcap, need)) return out_of_mem(name);
    rtap *tx = s->taps, *ty = tx + ow;
    int32_t *ib0 = (int32_t *)(ty + oh), *ib1 = ib0 + (size_t)ow * c;
    float *fb0 = (float *)(ib1 + (size_t)ow * c), *fb1 = fb0 + (size_t)ow * c;
    if (interp == SP_INTERP_NEAREST) { nearest_taps(tx, ow, sw); nearest_taps(ty, oh, sh); }
    else { linear_taps(tx, ow, sw, 0); linear_taps(ty, oh, sh, 1); }
    const int W = ow * c;
    if (su8) {
        unsigned char *d = other(s, im, 0, (size_t)oh * W);
        if (!d) return out_of_mem(name);
        double sx = (double)sw / ow, sy = (double)sh / oh;
        if (interp == SP_INTERP_LINEAR && sx == 2.0 && sy == 2.0) {
            /* cv::resize: INTER_LINEAR at exactly 1/2 is INTER_AREA's fast path */
            for (int y = 0; y < oh; y++) {
                const unsigned char *r0 = su8 + (size_t)(2 * y) * rs, *r1 = r0 + rs;
                unsigned char *o = d + (size_t)y * W;
                for (int x = 0; x < ow; x++)
                    for (int k = 0; k < c; k++) {
                        int a = 2 * x * c + k;
                        o[x * c + k] = (unsigned char)((r0[a] + r0[a + c] + r1[a] + r1[a + c] + 2) >> 2);
                    }
            }
        } else if (interp == SP_INTERP_NEAREST) {
            for (int y = 0; y < oh; y++) {
                const unsigned char *r = su8 + (size_t)ty[y].x0 * rs;
                unsigned char *o = d + (size_t)y * W;
                for (int x = 0; x < ow; x++) memcpy(o + x * c, r + tx[x].x0 * c, (size_t)c);
            }
        } else {
            int32_t *hb[2] = {ib0, ib1};
            int hrow[2] = {-1, -1};
            for (int y = 0; y < oh; y++) {
                const int need[2] = {ty[y].x0, ty[y].x1};
                const int32_t *rp[2];
                for (int k = 0; k < 2; k++) {
                    int j = hrow[0] == need[k] ? 0 : hrow[1] == need[k] ? 1 : -1;
                    if (j < 0) {
                        /* the buffer not holding the other row this output row needs */
                        j = hrow[k] == need[1 - k] ? 1 - k : k;
                        const unsigned char *r = su8 + (size_t)need[k] * rs;
                        int32_t *bb = hb[j];
                        if (c == 3) {
                            for (int x = 0; x < ow; x++) {
                                const unsigned char *p0 = r + tx[x].x0 * 3, *p1 = r + tx[x].x1 * 3;
                                const int a0 = tx[x].a0, a1 = tx[x].a1;
                                bb[3 * x] = p0[0] * a0 + p1[0] * a1;
                                bb[3 * x + 1] = p0[1] * a0 + p1[1] * a1;
                                bb[3 * x + 2] = p0[2] * a0 + p1[2] * a1;
                            }
                        } else {
                            for (int x = 0; x < ow; x++) {
                                const unsigned char *p0 = r + tx[x].x0 * c, *p1 = r + tx[x].x1 * c;
                                int a0 = tx[x].a0, a1 = tx[x].a1;
                                for (int ch = 0; ch < c; ch++) bb[x * c + ch] = p0[ch] * a0 + p1[ch] * a1;
                            }
                        }
                        hrow[j] = need[k];
                    }
                    rp[k] = hb[j];
                }
                const int32_t *r0 = rp[0], *r1 = rp[1];
                const int b0 = ty[y].a0, b1 = ty[y].a1;
                unsigned char *o = d + (size_t)y * W;
                /* OpenCV's SIMD vertical pass (VResizeLinearVec_32s8u): (b0*(S0>>4))>>16 +
                 * (b1*(S1>>4))>>16, rounded >>2. MindSpore 2.10's cv::resize gives this on every
                 * column (checked bit-exact against it by scripts/gen/gen_image_fixtures.py). */
                for (int x = 0; x < W; x++) {
                    int v = (((b0 * (int16_t)(r0[x] >> 4)) >> 16) + ((b1 * (int16_t)(r1[x] >> 4)) >> 16) + 2) >> 2;
                    o[x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            }
        }
        im->u8 = d; im->f32 = NULL;
    } else {
        float *d = other(s, im, 1, (size_t)oh * W);
        if (!d) return out_of_mem(name);
        for (int y = 0; y < oh; y++) {
            const float *r0 = sf32 + (size_t)ty[y].x0 * rs, *r1 = sf32 + (size_t)ty[y].x1 * rs;
            for (int x = 0; x < ow; x++) {
                const float *p = r0 + tx[x].x0 * c, *q = r0 + tx[x].x1 * c;
                for (int ch = 0; ch < c; ch++) fb0[x * c + ch] = p[ch] * tx[x].f0 + q[ch] * tx[x].f1;
                p = r1 + tx[x].x0 * c; q = r1 + tx[x].x1 * c;
                for (int ch = 0; ch < c; ch++) fb1[x * c + ch] = p[ch] * tx[x].f0 + q[ch] * tx[x].f1;
            }
            float *o = d + (size_t)y * W;
            const float b0 = ty[y].f0, b1 = ty[y].f1;
            for (int x = 0; x < W; x++) o[x] = fb0[x] * b0 + fb1[x] * b1;
        }
        im->f32 = d; im->u8 = NULL;
    }
    im->h = oh; im->w = ow; im->rs = W; im->slot = other_slot(im);
    return SP_OK;
}

/* OpenCV borderInterpolate: source index for p in a line of n, -1 for the constant. */
static int border(int p, int n, int mode) {
    if ((unsigned)p < (unsigned)n) return p;
    if (mode == SP_BORDER_CONSTANT) return -1;
    if (mode == SP_BORDER_EDGE) return p < 0 ? 0 : n - 1;
    if (n == 1) return 0;
    int delta = mode == SP_BORDER_REFLECT; /* REFLECT is OpenCV's BORDER_REFLECT_101 */
    do {
        if (p < 0) p = -p - 1 + delta;
        else p = n - 1 - (p - n) - delta;
    } while ((unsigned)p >= (unsigned)n);
    return p;
}

/* out(y, x) = padded(y + y0, x + x0) for an (oh, ow) window of the image padded by
 * (top, left) on the top/left, with mode/fill outside. */
static sp_status window(sp_img_scratch *s, wimg *im, int y0, int x0, int oh, int ow, int mode, const float *fill,
                        const char *name) {
    const int c = im->c, f = im->f32 != NULL;
    void *d = other(s, im, f, (size_t)oh * ow * c);
    if (!d) return out_of_mem(name);
    for (int y = 0; y < oh; y++) {
        int sy = border(y + y0, im->h, mode);
        for (int x = 0; x < ow; x++) {
            int sx = sy < 0 ? -1 : border(x + x0, im->w, mode);
            size_t di = ((size_t)y * ow + x) * c;
            if (sx < 0) {
                for (int k = 0; k < c; k++) {
                    float v = fill ? fill[k < 4 ? k : 3] : 0;
                    if (f) ((float *)d)[di + k] = v;
                    else ((unsigned char *)d)[di + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            } else if (f) {
                memcpy((float *)d + di, im->f32 + (size_t)sy * im->rs + (size_t)sx * c, sizeof(float) * c);
            } else {
                memcpy((unsigned char *)d + di, im->u8 + (size_t)sy * im->rs + (size_t)sx * c, (size_t)c);
            }
        }
    }
    if (f) { im->f32 = d; im->u8 = NULL; } else { im->u8 = d; im->f32 = NULL; }
    im->h = oh; im->w = ow; im->rs = ow * c; im->slot = other_slot(im);
    return SP_OK;
}

static sp_status make_writable(sp_img_scratch *s, wimg *im, const char *name) {
    if (im->slot >= 0 && im->rs == im->w * im->c) return SP_OK;
    return window(s, im, 0, 0, im->h, im->w, SP_BORDER_EDGE, NULL, name);
}

static sp_status to_float(sp_img_scratch *s, wimg *im, const char *name) {
    if (im->f32 && im->slot >= 0 && im->rs == im->w * im->c) return SP_OK;
    size_t n = (size_t)im->h * im->w * im->c;
    float *d = other(s, im, 1, n);
    if (!d) return out_of_mem(name);
    const int W = im->w * im->c;
    for (int y = 0; y < im->h; y++) {
        float *o = d + (size_t)y * W;
        if (im->u8) { const unsigned char *r = im->u8 + (size_t)y * im->rs; for (int x = 0; x < W; x++) o[x] = r[x]; }
        else memcpy(o, im->f32 + (size_t)y * im->rs, sizeof(float) * W);
    }
    im->f32 = d; im->u8 = NULL; im->rs = W; im->slot = other_slot(im);
    return SP_OK;
}

/* MindSpore Resize(int): the shorter side becomes size, the other floor(size/short*long)
 * computed in float. */
static void resize_dims(const sp_img_op *o, int h, int w, int *oh, int *ow) {
    if (!o->resize_short) { *oh = o->h; *ow = o->w; return; }
    if (h < w) { *oh = o->h; *ow = (int)floorf((float)o->h / (float)h * (float)w); }
    else { *ow = o->h; *oh = (int)floorf((float)o->h / (float)w * (float)h); }
    if (*oh < 1) *oh = 1;
    if (*ow < 1) *ow = 1;
}

/* RandomCrop's padded size. */
static void rc_pads(const sp_img_op *o, int h, int w, int *l, int *t, int *r, int *b) {
    int any = o->padding[0] | o->padding[1] | o->padding[2] | o->padding[3];
    *l = any ? o->padding[0] : o->pad; *t = any ? o->padding[1] : o->pad;
    *r = any ? o->padding[2] : o->pad; *b = any ? o->padding[3] : o->pad;
    if (o->pad_if_needed) {
        int ph = h + *t + *b, pw = w + *l + *r;
        if (ph < o->h) { *t += o->h - ph; *b += o->h - ph; }
        if (pw < o->w) { *l += o->w - pw; *r += o->w - pw; }
    }
}

/* Validate ops for an input of (h, w, c) and a working dtype (uint8/float32): output
 * shape and dtype. Random ops have fixed output sizes, so the plan is exact. */
static sp_status plan(int h, int w, int c, int dt, const sp_img_op *ops, int nops, int *oh, int *ow, int *chw, int *odt,
                      const char *name) {
    if (h < 1 || w < 1 || c < 1) return sp_error(SP_EINVAL, "%s: bad input image size %dx%dx%d", name, h, w, c);
    if (nops < 0 || (nops > 0 && !ops)) return sp_error(SP_EINVAL, "%s: bad transform op list", name);
    int ch = 0;
    for (int i = 0; i < nops; i++) {
        const sp_img_op *o = &ops[i];
        int geo = o->kind == SP_IMG_RESIZE || o->kind == SP_IMG_RANDOM_CROP || o->kind == SP_IMG_CENTER_CROP ||
                  o->kind == SP_IMG_RANDOM_RESIZED_CROP || o->kind == SP_IMG_RANDOM_HFLIP || o->kind == SP_IMG_RANDOM_VFLIP ||
                  o->kind == SP_IMG_NORMALIZE;
        if (ch && geo)
            return sp_error(SP_EINVAL, "%s: transform %d (kind %d) comes after HWC2CHW: it needs an HWC image", name, i + 1, o->kind);
        switch (o->kind) {
        case SP_IMG_RESIZE:
            if (o->h < 1 || (!o->resize_short && o->w < 1) || o->h > 65536 || o->w > 65536)
                return sp_error(SP_EINVAL, "Resize: size (%d, %d) must be within 1..65536", o->h, o->w);
            if (o->interp != SP_INTERP_LINEAR && o->interp != SP_INTERP_NEAREST)
                return sp_error(SP_EINVAL, "Resize: interpolation %d not supported (LINEAR, NEAREST)", o->interp);
            resize_dims(o, h, w, &h, &w);
            if ((int64_t)h * w > ((int64_t)1 << 31)) return sp_error(SP_EINVAL, "%s: Resize to %dx%d is too large", name, h, w);
            break;
        case SP_IMG_RESCALE: case SP_IMG_NORMALIZE:
            if (o->kind == SP_IMG_NORMALIZE) {
                if (c > 4) return sp_error(SP_EINVAL, "Normalize: images have %d channels (at most 4 supported)", c);
                for (int k = 0; k < c; k++)
                    if (!(o->std[k] != 0) || !isfinite(o->std[k]) || !isfinite(o->mean[k]))
                        return sp_error(SP_EINVAL, "Normalize: std[%d] = %g must be finite and non-zero", k, o->std[k]);
            }
            dt = SP_FLOAT32;
            break;
        case SP_IMG_HWC2CHW:
            ch = 1;
            break;
        case SP_IMG_RANDOM_HFLIP: case SP_IMG_RANDOM_VFLIP:
            if (!(o->a >= 0 && o->a <= 1)) return sp_error(SP_EINVAL, "RandomFlip: prob %g must be in [0, 1]", o->a);
            break;
        case SP_IMG_RANDOM_CROP: {
            if (o->pad < 0 || o->pad > 65536) return sp_error(SP_EINVAL, "RandomCrop: padding %d out of range", o->pad);
            for (int k = 0; k < 4; k++)
                if (o->padding[k] < 0 || o->padding[k] > 65536) return sp_error(SP_EINVAL, "RandomCrop: padding %d out of range", o->padding[k]);
            if (o->pad_mode < SP_BORDER_CONSTANT || o->pad_mode > SP_BORDER_SYMMETRIC)
                return sp_error(SP_EINVAL, "RandomCrop: padding_mode %d unknown", o->pad_mode);
            int l, t, r, b;
            rc_pads(o, h, w, &l, &t, &r, &b);
            int64_t ph = (int64_t)h + t + b, pw = (int64_t)w + l + r;
            if (o->h < 1 || o->w < 1 || o->h > ph || o->w > pw)
                return sp_error(SP_EINVAL, "%s: RandomCrop size (%d, %d) is larger than the (padded) image (%lld, %lld)", name,
                                o->h, o->w, (long long)ph, (long long)pw);
            h = o->h; w = o->w;
            break;
        }
        case SP_IMG_CENTER_CROP:
            if (o->h < 1 || o->w < 1 || o->h > 65536 || o->w > 65536)
                return sp_error(SP_EINVAL, "CenterCrop: size (%d, %d) must be within 1..65536", o->h, o->w);
            if (o->h - h >= 3 * h || o->w - w >= 3 * w)
                return sp_error(SP_EINVAL, "%s: CenterCrop size (%d, %d) is more than 3 times the image (%d, %d) on a side", name,
                                o->h, o->w, h, w);
            h = o->h; w = o->w;
            break;
        case SP_IMG_RANDOM_RESIZED_CROP:
            if (o->h < 1 || o->w < 1 || o->h > 65536 || o->w > 65536)
                return sp_error(SP_EINVAL, "RandomResizedCrop: size (%d, %d) must be within 1..65536", o->h, o->w);
            if (!(o->scale[0] >= 0 && o->scale[0] <= o->scale[1]) || !(o->ratio[0] > 0 && o->ratio[0] <= o->ratio[1]) ||
                !isfinite(o->scale[1]) || !isfinite(o->ratio[1]))
                return sp_error(SP_EINVAL, "RandomResizedCrop: scale (%g, %g) and ratio (%g, %g) must be ordered, ratio > 0",
                                o->scale[0], o->scale[1], o->ratio[0], o->ratio[1]);
            if (o->max_attempts < 0) return sp_error(SP_EINVAL, "RandomResizedCrop: max_attempts %d < 0", o->max_attempts);
            if (o->interp != SP_INTERP_LINEAR && o->interp != SP_INTERP_NEAREST)
                return sp_error(SP_EINVAL, "RandomResizedCrop: interpolation %d not supported (LINEAR, NEAREST)", o->interp);
            h = o->h; w = o->w;
            break;
        case SP_IMG_TYPECAST:
            if (!sp_dtype_valid(o->dtype)) return sp_error(SP_EINVAL, "TypeCast: unknown dtype %d", o->dtype);
            dt = o->dtype;
            break;
        default:
            return sp_error(SP_EINVAL, "%s: unknown transform kind %d at position %d", name, o->kind, i + 1);
        }
    }
    *oh = h; *ow = w; *chw = ch; *odt = dt;
    return SP_OK;
}

sp_status sp_image_out_info(int h, int w, int c, int src_dtype, const sp_img_op *ops, int nops, int64_t *shape, int *dtype) {
    int oh, ow, chw, odt;
    if (src_dtype != SP_UINT8 && src_dtype != SP_FLOAT32)
        return sp_error(SP_EINVAL, "image transforms: source images must be uint8 or float32, got %s", sp_dtype_name(src_dtype));
    sp_status st = plan(h, w, c, src_dtype, ops, nops, &oh, &ow, &chw, &odt, "image transforms");
    if (st) return st;
    if (shape) {
        if (chw) { shape[0] = c; shape[1] = oh; shape[2] = ow; }
        else { shape[0] = oh; shape[1] = ow; shape[2] = c; }
    }
    if (dtype) *dtype = odt;
    return SP_OK;
}

sp_status sp_image_out_shape(int h, int w, int c, const sp_img_op *ops, int nops, int64_t *shape) {
    return sp_image_out_info(h, w, c, SP_FLOAT32, ops, nops, shape, NULL);
}

static void flip_lr(wimg *im) {
    const int c = im->c, w = im->w;
    for (int y = 0; y < im->h; y++) {
        if (im->u8) {
            unsigned char *r = (unsigned char *)im->u8 + (size_t)y * im->rs;
            for (int x = 0; x < w / 2; x++)
                for (int k = 0; k < c; k++) { unsigned char t = r[x * c + k]; r[x * c + k] = r[(w - 1 - x) * c + k]; r[(w - 1 - x) * c + k] = t; }
        } else {
            float *r = (float *)im->f32 + (size_t)y * im->rs;
            for (int x = 0; x < w / 2; x++)
                for (int k = 0; k < c; k++) { float t = r[x * c + k]; r[x * c + k] = r[(w - 1 - x) * c + k]; r[(w - 1 - x) * c + k] = t; }
        }
    }
}

static void flip_tb(wimg *im) {
    size_t rb = (size_t)im->w * im->c * (im->u8 ? 1 : sizeof(float));
    unsigned char tmp[256];
    for (int y = 0; y < im->h / 2; y++) {
        unsigned char *a = (unsigned char *)(im->u8 ? (const void *)(im->u8 + (size_t)y * im->rs) : (const void *)(im->f32 + (size_t)y * im->rs));
        unsigned char *b = (unsigned char *)(im->u8 ? (const void *)(im->u8 + (size_t)(im->h - 1 - y) * im->rs)
                                                    : (const void *)(im->f32 + (size_t)(im->h - 1 - y) * im->rs));
        for (size_t o = 0; o < rb; o += sizeof tmp) {
            size_t k = rb - o < sizeof tmp ? rb - o : sizeof tmp;
            memcpy(tmp, a + o, k); memcpy(a + o, b + o, k); memcpy(b + o, tmp, k);
        }
    }
}

/* torchvision / MindSpore RandomResizedCrop box. */
static void rrc_box(const sp_img_op *o, int h, int w, uint64_t *rng, int *y, int *x, int *ch, int *cw) {
    double area = (double)h * w;
    double lr0 = log(o->ratio[0]), lr1 = log(o->ratio[1]);
    int tries = o->max_attempts ? o->max_attempts : 10;
    for (int i = 0; i < tries; i++) {
        double ta = area * (o->scale[0] + (o->scale[1] - o->scale[0]) * unif(rng));
        double ar = exp(lr0 + (lr1 - lr0) * unif(rng));
        double fw = nearbyint(sqrt(ta * ar)), fh = nearbyint(sqrt(ta / ar));
        if (fw > 0 && fw <= w && fh > 0 && fh <= h) {
            *cw = (int)fw; *ch = (int)fh;
            *y = (int)below(rng, (uint64_t)(h - *ch) + 1);
            *x = (int)below(rng, (uint64_t)(w - *cw) + 1);
            return;
        }
    }
    double in_ratio = (double)w / h;
    if (in_ratio < o->ratio[0]) { *cw = w; *ch = (int)nearbyint(w / o->ratio[0]); }
    else if (in_ratio > o->ratio[1]) { *ch = h; *cw = (int)nearbyint(h * o->ratio[1]); }
    else { *cw = w; *ch = h; }
    if (*ch < 1) *ch = 1;
    if (*cw < 1) *cw = 1;
    if (*ch > h) *ch = h;
    if (*cw > w) *cw = w;
    *y = (h - *ch) / 2;
    *x = (w - *cw) / 2;
}

sp_status sp_img_run(const unsigned char *src_u8, const float *src_f32, int h, int w, int c, const sp_img_op *ops,
                     int nops, uint64_t seed, sp_img_scratch *s, sp_img_result *r, const char *name) {
    int oh, ow, chw, odt;
    sp_status st = plan(h, w, c, src_u8 ? SP_UINT8 : SP_FLOAT32, ops, nops, &oh, &ow, &chw, &odt, name);
    if (st) return st;
    wimg im = {src_u8, src_u8 ? NULL : src_f32, h, w, c, w * c, -1};
    const sp_img_op *pending = NULL;
    int dt = src_u8 ? SP_UINT8 : SP_FLOAT32;
    uint64_t rng = seed;
    for (int i = 0; i < nops && !st; i++) {
        const sp_img_op *o = &ops[i];
        switch (o->kind) {
        case SP_IMG_RESIZE: {
            int rh, rw;
            resize_dims(o, im.h, im.w, &rh, &rw);
            if (rh != im.h || rw != im.w) st = resize(s, &im, im.u8, im.f32, im.rs, im.h, im.w, rh, rw, o->interp, name);
            break;
        }
        case SP_IMG_RESCALE: case SP_IMG_NORMALIZE: {
            if (o->kind == SP_IMG_NORMALIZE && im.u8 && c <= 4) {
                /* a Normalize followed by nothing but HWC2CHW: sp_img_write applies it while
                 * writing (one pass less; the same float expression) */
                int last = 1;
                for (int j = i + 1; j < nops; j++) last &= ops[j].kind == SP_IMG_HWC2CHW;
                if (last) { pending = o; dt = SP_FLOAT32; break; }
            }
            const wimg in = im;
            size_t n = (size_t)im.h * im.w * c;
            float *d = other(s, &im, 1, n);
            if (!d) { st = out_of_mem(name); break; }
            const int W = im.w * c;
            float sc[4], sh[4];
            for (int k = 0; k < 4; k++) {
                if (o->kind == SP_IMG_RESCALE) { sc[k] = (float)o->a; sh[k] = (float)o->b; }
                else { sc[k] = 1.0f / o->std[k]; sh[k] = -o->mean[k] / o->std[k]; }
            }
            for (int y = 0; y < im.h; y++) {
                float *out = d + (size_t)y * W;
                if (o->kind == SP_IMG_RESCALE) {
                    if (in.u8) { const unsigned char *q = in.u8 + (size_t)y * in.rs; for (int x = 0; x < W; x++) out[x] = q[x] * sc[0] + sh[0]; }
                    else { const float *q = in.f32 + (size_t)y * in.rs; for (int x = 0; x < W; x++) out[x] = q[x] * sc[0] + sh[0]; }
                } else if (in.u8 && c == 3) {
                    const unsigned char *q = in.u8 + (size_t)y * in.rs;
                    const float m0 = o->mean[0], m1 = o->mean[1], m2 = o->mean[2];
                    const float s0 = o->std[0], s1 = o->std[1], s2 = o->std[2];
                    for (int x = 0; x < W; x += 3) {
                        out[x] = ((float)q[x] - m0) / s0;
                        out[x + 1] = ((float)q[x + 1] - m1) / s1;
                        out[x + 2] = ((float)q[x + 2] - m2) / s2;
                    }
                } else if (in.u8) {
                    const unsigned char *q = in.u8 + (size_t)y * in.rs;
                    for (int x = 0; x < W; x += c)
                        for (int k = 0; k < c; k++) out[x + k] = ((float)q[x + k] - o->mean[k]) / o->std[k];
                } else {
                    const float *q = in.f32 + (size_t)y * in.rs;
                    for (int x = 0; x < W; x += c)
                        for (int k = 0; k < c; k++) out[x + k] = (q[x + k] - o->mean[k]) / o->std[k];
                }
            }
            im.f32 = d; im.u8 = NULL; im.rs = W; im.slot = other_slot(&im);
            dt = SP_FLOAT32;
            break;
        }
        case SP_IMG_HWC2CHW:
            break;
        case SP_IMG_RANDOM_HFLIP: case SP_IMG_RANDOM_VFLIP:
            if (unif(&rng) < o->a) {
                if ((st = make_writable(s, &im, name))) break;
                if (o->kind == SP_IMG_RANDOM_HFLIP) flip_lr(&im); else flip_tb(&im);
            }
            break;
        case SP_IMG_RANDOM_CROP: {
            int l, t, rr, b;
            rc_pads(o, im.h, im.w, &l, &t, &rr, &b);
            int ph = im.h + t + b, pw = im.w + l + rr;
            int y0 = (int)below(&rng, (uint64_t)(ph - o->h) + 1) - t;
            int x0 = (int)below(&rng, (uint64_t)(pw - o->w) + 1) - l;
            st = window(s, &im, y0, x0, o->h, o->w, o->pad_mode, o->fill, name);
            break;
        }
        case SP_IMG_CENTER_CROP: {
            /* MindSpore CenterCrop: zero-pad a too-small side (top/left get the odd pixel), then
             * crop at floor((H - h) / 2), as MindSpore 2.10 does */
            int ph = im.h, pw = im.w, pt = 0, pl = 0;
            if (o->h > ph) { pt = (o->h - ph) / 2 + (o->h - ph) % 2; ph = o->h; }
            if (o->w > pw) { pl = (o->w - pw) / 2 + (o->w - pw) % 2; pw = o->w; }
            int y0 = (ph - o->h) / 2 - pt, x0 = (pw - o->w) / 2 - pl;
            if (y0 != 0 || x0 != 0 || o->h != im.h || o->w != im.w)
                st = window(s, &im, y0, x0, o->h, o->w, SP_BORDER_CONSTANT, NULL, name);
            break;
        }
        case SP_IMG_RANDOM_RESIZED_CROP: {
            int y, x, ch2, cw2;
            rrc_box(o, im.h, im.w, &rng, &y, &x, &ch2, &cw2);
            const unsigned char *su = im.u8 ? im.u8 + (size_t)y * im.rs + (size_t)x * c : NULL;
            const float *sf = im.f32 ? im.f32 + (size_t)y * im.rs + (size_t)x * c : NULL;
            if (ch2 == o->h && cw2 == o->w) st = window(s, &im, y, x, o->h, o->w, SP_BORDER_EDGE, NULL, name);
            else st = resize(s, &im, su, sf, im.rs, ch2, cw2, o->h, o->w, o->interp, name);
            break;
        }
        case SP_IMG_TYPECAST:
            if (o->dtype == SP_UINT8 && !im.u8) {
                /* float -> uint8: truncate toward zero, saturating */
                size_t n = (size_t)im.h * im.w * c;
                const wimg in = im;
                unsigned char *d = other(s, &im, 0, n);
                if (!d) { st = out_of_mem(name); break; }
                const int W = im.w * c;
                for (int y = 0; y < im.h; y++) {
                    const float *q = in.f32 + (size_t)y * in.rs;
                    for (int x = 0; x < W; x++) { float v = q[x]; d[(size_t)y * W + x] = (unsigned char)(v >= 255 ? 255 : v > 0 ? (int)v : 0); }
                }
                im.u8 = d; im.f32 = NULL; im.rs = W; im.slot = other_slot(&im);
            } else if (o->dtype != SP_UINT8 && im.u8) {
                st = to_float(s, &im, name);
            } else if (sp_dtype_is_int(o->dtype) && im.f32) {
                if ((st = make_writable(s, &im, name))) break;
                float *q = (float *)im.f32;
                size_t n = (size_t)im.h * im.w * c;
                for (size_t k = 0; k < n; k++) q[k] = truncf(q[k]);
            }
            dt = o->dtype;
            break;
        default: break;
        }
    }
    if (st) return st;
    if (im.rs != im.w * c && (st = make_writable(s, &im, name))) return st;
    r->u8 = im.u8; r->f32 = im.f32; r->h = im.h; r->w = im.w; r->c = c; r->chw = chw; r->dtype = dt;
    r->norm = pending;
    (void)oh; (void)ow; (void)odt;
    return SP_OK;
}

void sp_img_result_shape(const sp_img_result *r, int64_t shape[3]) {
    if (r->chw) { shape[0] = r->c; shape[1] = r->h; shape[2] = r->w; }
    else { shape[0] = r->h; shape[1] = r->w; shape[2] = r->c; }
}

void sp_img_write(const sp_img_result *r, int dtype, void *dst) {
    const int h = r->h, w = r->w, c = r->c;
    const size_t n = (size_t)h * w * c;
    if (r->norm) {
        const float *m = r->norm->mean, *sd = r->norm->std;
        const unsigned char *q = r->u8;
        const size_t plane = (size_t)h * w;
        if (dtype == SP_FLOAT32 && c == 3) {
            float *d = dst;
            const float m0 = m[0], m1 = m[1], m2 = m[2], s0 = sd[0], s1 = sd[1], s2 = sd[2];
            if (r->chw) {
                float *d0 = d, *d1 = d + plane, *d2 = d + 2 * plane;
                for (size_t p = 0; p < plane; p++, q += 3) {
                    d0[p] = ((float)q[0] - m0) / s0;
                    d1[p] = ((float)q[1] - m1) / s1;
                    d2[p] = ((float)q[2] - m2) / s2;
                }
            } else {
                for (size_t p = 0; p < plane; p++, q += 3, d += 3) {
                    d[0] = ((float)q[0] - m0) / s0;
                    d[1] = ((float)q[1] - m1) / s1;
                    d[2] = ((float)q[2] - m2) / s2;
                }
            }
            return;
        }
        const size_t os = sp_dtype_size(dtype);
        for (size_t p = 0; p < plane; p++)
            for (int k = 0; k < c; k++) {
                float v = ((float)q[p * c + k] - m[k]) / sd[k];
                size_t di = r->chw ? (size_t)k * plane + p : p * c + k;
                if (dtype == SP_FLOAT32) ((float *)dst)[di] = v;
                else sp_store_f64(dtype, (char *)dst + di * os, v);
            }
        return;
    }
    if (!r->chw || c == 1) {
        if (r->u8 && dtype == SP_UINT8) { memcpy(dst, r->u8, n); return; }
        if (r->f32 && dtype == SP_FLOAT32) { memcpy(dst, r->f32, n * sizeof(float)); return; }
        if (r->u8 && dtype == SP_FLOAT32) { float *d = dst; for (size_t i = 0; i < n; i++) d[i] = r->u8[i]; return; }
    } else {
        const size_t plane = (size_t)h * w;
        if (r->f32 && dtype == SP_FLOAT32) {
            float *d = dst;
            if (c == 3) {
                float *d0 = d, *d1 = d + plane, *d2 = d + 2 * plane;
                const float *q = r->f32;
                for (size_t p = 0; p < plane; p++, q += 3) { d0[p] = q[0]; d1[p] = q[1]; d2[p] = q[2]; }
                return;
            }
            for (size_t p = 0; p < plane; p++)
                for (int k = 0; k < c; k++) d[k * plane + p] = r->f32[p * c + k];
            return;
        }
        if (r->u8 && dtype == SP_UINT8) {
            unsigned char *d = dst;
            for (size_t p = 0; p < plane; p++)
                for (int k = 0; k < c; k++) d[k * plane + p] = r->u8[p * c + k];
            return;
        }
        if (r->u8 && dtype == SP_FLOAT32) {
            float *d = dst;
            for (size_t p = 0; p < plane; p++)
                for (int k = 0; k < c; k++) d[k * plane + p] = r->u8[p * c + k];
            return;
        }
    }
    const size_t os = sp_dtype_size(dtype);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                size_t si = ((size_t)y * w + x) * c + k;
                size_t di = r->chw ? ((size_t)k * h + y) * w + x : si;
                double v = r->u8 ? r->u8[si] : r->f32[si];
                sp_store_f64(dtype, (char *)dst + di * os, v);
            }
}

uint64_t sp_image_seed(uint64_t seed, int64_t epoch, int64_t index) {
    uint64_t s = seed ^ 0x5D0E5EEDull;
    uint64_t z = sm64(&s);
    s = z ^ ((uint64_t)epoch * 0xD1B54A32D192ED03ull);
    z = sm64(&s);
    s = z ^ ((uint64_t)index * 0x8CB92BA72F3D8DD7ull);
    return sm64(&s);
}

static int has_random(const sp_img_op *ops, int nops) {
    for (int i = 0; i < nops; i++)
        if (ops[i].kind == SP_IMG_RANDOM_CROP || ops[i].kind == SP_IMG_RANDOM_HFLIP || ops[i].kind == SP_IMG_RANDOM_VFLIP ||
            ops[i].kind == SP_IMG_RANDOM_RESIZED_CROP)
            return 1;
    return 0;
}

sp_status sp_image_transform(sp_tensor **out, const sp_tensor *img, const sp_img_op *ops, int nops, uint64_t seed) {
    if (!out || !img) return sp_error(SP_EINVAL, "sp_image_transform: NULL argument");
    *out = NULL;
    if (img->dtype != SP_UINT8 && img->dtype != SP_FLOAT32)
        return sp_error(SP_EINVAL, "image transforms: the image must be uint8 or float32, got %s", sp_dtype_name(img->dtype));
    if (img->ndim != 2 && img->ndim != 3)
        return sp_error(SP_EINVAL, "image transforms: the image must be [H,W] or [H,W,C], got %d dims", img->ndim);
    sp_status st = sp_require_host("image transforms", img, "image");
    if (st) return st;
    sp_tensor *ci = NULL;
    if ((st = sp_tensor_contiguous(&ci, img))) return st;
    int64_t H = ci->shape[0], W = ci->shape[1], Cc = ci->ndim == 3 ? ci->shape[2] : 1;
    if (H < 1 || W < 1 || Cc < 1 || H > 65536 || W > 65536 || Cc > 4096) {
        sp_tensor_free(ci);
        return sp_error(SP_EINVAL, "image transforms: image size %lldx%lldx%lld out of range", (long long)H, (long long)W, (long long)Cc);
    }
    sp_img_scratch s = {0};
    sp_img_result r;
    const void *d = sp_host_data(ci);
    st = sp_img_run(ci->dtype == SP_UINT8 ? d : NULL, ci->dtype == SP_FLOAT32 ? d : NULL, (int)H, (int)W, (int)Cc, ops, nops,
                    seed, &s, &r, "image");
    if (!st) {
        int64_t shape[3];
        sp_img_result_shape(&r, shape);
        if (!(st = sp_tensor_empty(out, r.dtype, 3, shape))) sp_img_write(&r, r.dtype, sp_host_data(*out));
    }
    sp_img_scratch_free(&s);
    sp_tensor_free(ci);
    return st;
}

sp_status sp_image_batch(sp_tensor *out, const sp_tensor *src, const int64_t *idx, int64_t n,
                         const sp_img_op *ops, int nops, uint64_t *rng) {
    if (!out || !src || n < 0 || (n > 0 && !idx)) return sp_error(SP_EINVAL, "image_batch: NULL argument");
    if (src->dtype != SP_UINT8 && src->dtype != SP_FLOAT32)
        return sp_error(SP_EINVAL, "image_batch: source images must be uint8 or float32, got %s", sp_dtype_name(src->dtype));
    if (src->ndim != 3 && src->ndim != 4)
        return sp_error(SP_EINVAL, "image_batch: source images must be [N,H,W] or [N,H,W,C], got %d dims", src->ndim);
    sp_status hs = sp_require_host("image_batch", src, "src");
    if (!hs) hs = sp_require_host("image_batch", out, "out");
    if (hs) return hs;
    if (!sp_tensor_is_contiguous(src) || !sp_tensor_is_contiguous(out))
        return sp_error(SP_EINVAL, "image_batch: source and output must be contiguous");
    int64_t N = src->shape[0], H = src->shape[1], W = src->shape[2], Cc = src->ndim == 4 ? src->shape[3] : 1;
    if (H > 65536 || W > 65536 || Cc > 4096) return sp_error(SP_EINVAL, "image_batch: source image size out of range");
    int h = (int)H, w = (int)W, c = (int)Cc;
    int64_t os[3];
    sp_status st = sp_image_out_info(h, w, c, src->dtype, ops, nops, os, NULL);
    if (st) return st;
    if (out->ndim != 4 || out->shape[0] != n || out->shape[1] != os[0] || out->shape[2] != os[1] || out->shape[3] != os[2])
        return sp_error(SP_EINVAL, "image_batch: output must be [%lld,%lld,%lld,%lld] for this pipeline",
                        (long long)n, (long long)os[0], (long long)os[1], (long long)os[2]);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= N)
            return sp_error(SP_EINVAL, "image_batch: index %lld out of range [0, %lld)", (long long)idx[i], (long long)N);
    if (n == 0) return SP_OK;
    int rnd = has_random(ops, nops);
    if (rnd && !rng) return sp_error(SP_EINVAL, "image_batch: random ops need an rng state");
    uint64_t *seeds = malloc(sizeof(uint64_t) * (size_t)n);
    if (!seeds) return sp_error(SP_ENOMEM, "image_batch: out of memory");
    for (int64_t i = 0; i < n; i++) seeds[i] = rnd ? sm64(rng) : 0;
    const int64_t in_el = H * W * Cc, out_el = os[0] * os[1] * os[2];
    const unsigned char *s8 = src->dtype == SP_UINT8 ? sp_host_data(src) : NULL;
    const float *s32 = src->dtype == SP_FLOAT32 ? sp_host_data(src) : NULL;
    char *op = sp_host_data(out);
    const int odt = out->dtype;
    const size_t osz = sp_dtype_size(odt);
    int failed = 0;
    char msg[512] = "";
    int par = n > 1 && n * (out_el > in_el ? out_el : in_el) > 32768;
#pragma omp parallel if (par)
    {
        sp_img_scratch s = {0};
#pragma omp for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            sp_img_result r;
            int64_t k = idx[i];
            sp_status e = sp_img_run(s8 ? s8 + k * in_el : NULL, s32 ? s32 + k * in_el : NULL, h, w, c, ops, nops, seeds[i],
                                     &s, &r, "image_batch");
            if (e) {
#pragma omp critical
                {
                    if (!failed) { failed = e; snprintf(msg, sizeof msg, "%s", sp_last_error()); }
                }
            } else {
                sp_img_write(&r, odt, op + (size_t)(i * out_el) * osz);
            }
        }
        sp_img_scratch_free(&s);
    }
    free(seeds);
    if (failed) return sp_error(failed, "%s", msg);
    return SP_OK;
}
