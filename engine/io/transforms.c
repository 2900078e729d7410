/* transforms.c — batched image transforms for the dataset pipeline: one call per
 * batch gathers the batch's images, runs the op list on each (float working copy,
 * HWC) and writes the result (HWC or CHW) into a preallocated batch tensor.
 * Also index shuffling and row gathering (labels). */
#include "core/internal.h"

#include <math.h>
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
    const char *sp = sp_tensor_data(src);
    char *dp = sp_tensor_data(dst);
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

/* ---------------------------------------------------------------- ops */

typedef struct { int h, w, c, chw; int64_t maxel; } plan;

static sp_status plan_ops(int h, int w, int c, const sp_img_op *ops, int nops, plan *p) {
    if (h < 1 || w < 1 || c < 1) return sp_error(SP_EINVAL, "image transforms: bad input image size %dx%dx%d", h, w, c);
    if (nops < 0 || (nops > 0 && !ops)) return sp_error(SP_EINVAL, "image transforms: bad op list");
    int64_t maxel = (int64_t)h * w * c;
    int chw = 0;
    for (int i = 0; i < nops; i++) {
        const sp_img_op *o = &ops[i];
        switch (o->kind) {
        case SP_IMG_RESIZE:
            if (o->h < 1 || o->w < 1 || o->h > 65536 || o->w > 65536)
                return sp_error(SP_EINVAL, "Resize: size (%d, %d) must be within 1..65536", o->h, o->w);
            h = o->h; w = o->w;
            break;
        case SP_IMG_RESCALE: case SP_IMG_RANDOM_HFLIP:
            break;
        case SP_IMG_NORMALIZE:
            if (c > 4) return sp_error(SP_EINVAL, "Normalize: images have %d channels (at most 4 supported)", c);
            for (int k = 0; k < c; k++)
                if (!(o->std[k] != 0) || !isfinite(o->std[k]) || !isfinite(o->mean[k]))
                    return sp_error(SP_EINVAL, "Normalize: std[%d] = %g must be finite and non-zero", k, o->std[k]);
            break;
        case SP_IMG_HWC2CHW:
            chw = 1;
            break;
        case SP_IMG_RANDOM_CROP: {
            if (o->pad < 0 || o->pad > 65536) return sp_error(SP_EINVAL, "RandomCrop: padding %d out of range", o->pad);
            int64_t ph = (int64_t)h + 2 * o->pad, pw = (int64_t)w + 2 * o->pad;
            if (o->h < 1 || o->w < 1 || o->h > ph || o->w > pw)
                return sp_error(SP_EINVAL, "RandomCrop: crop size (%d, %d) must fit the (padded) image (%lld, %lld)",
                                o->h, o->w, (long long)ph, (long long)pw);
            h = o->h; w = o->w;
            break;
        }
        default:
            return sp_error(SP_EINVAL, "image transforms: unknown op kind %d at position %d", o->kind, i);
        }
        int64_t el = (int64_t)h * w * c;
        if (el > maxel) maxel = el;
    }
    p->h = h; p->w = w; p->c = c; p->chw = chw; p->maxel = maxel;
    return SP_OK;
}

sp_status sp_image_out_shape(int h, int w, int c, const sp_img_op *ops, int nops, int64_t *shape) {
    plan p;
    sp_status st = plan_ops(h, w, c, ops, nops, &p);
    if (st) return st;
    if (p.chw) { shape[0] = p.c; shape[1] = p.h; shape[2] = p.w; }
    else { shape[0] = p.h; shape[1] = p.w; shape[2] = p.c; }
    return SP_OK;
}

/* Bilinear, OpenCV INTER_LINEAR: fx = (x+0.5)*scale-0.5, clamped to the edges.
 * The column taps are computed once per call (tab: 3*ow ints/floats). */
typedef struct { int i0, i1; float w; } tap;

static void make_taps(tap *t, int on, int n) {
    double s = (double)n / on;
    for (int x = 0; x < on; x++) {
        double f = (x + 0.5) * s - 0.5;
        int i0 = (int)floor(f);
        double w = f - i0;
        if (i0 < 0) { i0 = 0; w = 0; }
        if (i0 >= n - 1) { i0 = n - 1; w = 0; }
        t[x].i0 = i0;
        t[x].i1 = i0 + 1 < n ? i0 + 1 : n - 1;
        t[x].w = (float)w;
    }
}

static void resize_bilinear(float *dst, int oh, int ow, const float *src, int h, int w, int c, tap *tx, tap *ty) {
    make_taps(tx, ow, w);
    make_taps(ty, oh, h);
    for (int y = 0; y < oh; y++) {
        const float *r0 = src + (size_t)ty[y].i0 * w * c, *r1 = src + (size_t)ty[y].i1 * w * c;
        const float wy = ty[y].w;
        float *d = dst + (size_t)y * ow * c;
        for (int x = 0; x < ow; x++) {
            const int a = tx[x].i0 * c, b = tx[x].i1 * c;
            const float wx = tx[x].w;
            for (int k = 0; k < c; k++) {
                float top = r0[a + k] + (r0[b + k] - r0[a + k]) * wx;
                float bot = r1[a + k] + (r1[b + k] - r1[a + k]) * wx;
                d[x * c + k] = top + (bot - top) * wy;
            }
        }
    }
}

static int has_random(const sp_img_op *ops, int nops) {
    for (int i = 0; i < nops; i++)
        if (ops[i].kind == SP_IMG_RANDOM_CROP || ops[i].kind == SP_IMG_RANDOM_HFLIP) return 1;
    return 0;
}

/* Run the ops on one image; returns the buffer holding the result. */
static float *run_one(float *a, float *b, int h, int w, int c, const sp_img_op *ops, int nops, uint64_t seed,
                      tap *tx, tap *ty) {
    for (int i = 0; i < nops; i++) {
        const sp_img_op *o = &ops[i];
        int64_t n = (int64_t)h * w * c;
        switch (o->kind) {
        case SP_IMG_RESIZE:
            if (o->h != h || o->w != w) {
                resize_bilinear(b, o->h, o->w, a, h, w, c, tx, ty);
                float *t = a; a = b; b = t;
                h = o->h; w = o->w;
            }
            break;
        case SP_IMG_RESCALE: {
            float s = (float)o->a, sh = (float)o->b;
            for (int64_t k = 0; k < n; k++) a[k] = a[k] * s + sh;
            break;
        }
        case SP_IMG_NORMALIZE:
            for (int64_t k = 0; k < n; k += c)
                for (int ch = 0; ch < c; ch++) a[k + ch] = (a[k + ch] - o->mean[ch]) / o->std[ch];
            break;
        case SP_IMG_HWC2CHW:
            break;
        case SP_IMG_RANDOM_CROP: {
            int ph = h + 2 * o->pad, pw = w + 2 * o->pad;
            int y0 = (int)below(&seed, (uint64_t)(ph - o->h) + 1) - o->pad;
            int x0 = (int)below(&seed, (uint64_t)(pw - o->w) + 1) - o->pad;
            for (int y = 0; y < o->h; y++)
                for (int x = 0; x < o->w; x++) {
                    int sy = y + y0, sx = x + x0;
                    float *d = b + ((size_t)y * o->w + x) * c;
                    if (sy < 0 || sy >= h || sx < 0 || sx >= w) { for (int k = 0; k < c; k++) d[k] = 0; }
                    else memcpy(d, a + ((size_t)sy * w + sx) * c, sizeof(float) * c);
                }
            float *t = a; a = b; b = t;
            h = o->h; w = o->w;
            break;
        }
        case SP_IMG_RANDOM_HFLIP: {
            double u = (double)(sm64(&seed) >> 11) * 0x1.0p-53;
            if (u < o->a)
                for (int y = 0; y < h; y++) {
                    float *r = a + (size_t)y * w * c;
                    for (int x = 0; x < w / 2; x++)
                        for (int k = 0; k < c; k++) {
                            float t = r[x * c + k];
                            r[x * c + k] = r[(w - 1 - x) * c + k];
                            r[(w - 1 - x) * c + k] = t;
                        }
                }
            break;
        }
        default: break;
        }
    }
    return a;
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
    plan p;
    sp_status st = plan_ops(h, w, c, ops, nops, &p);
    if (st) return st;
    int64_t os[3];
    if (p.chw) { os[0] = p.c; os[1] = p.h; os[2] = p.w; } else { os[0] = p.h; os[1] = p.w; os[2] = p.c; }
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
    const int64_t in_el = H * W * Cc, out_el = (int64_t)p.h * p.w * p.c;
    const unsigned char *s8 = src->dtype == SP_UINT8 ? sp_tensor_data(src) : NULL;
    const float *s32 = src->dtype == SP_FLOAT32 ? sp_tensor_data(src) : NULL;
    char *op = sp_tensor_data(out);
    const int odt = out->dtype;
    const size_t osz = sp_dtype_size(odt);
    int maxtap = 1;
    for (int i = 0; i < nops; i++)
        if (ops[i].kind == SP_IMG_RESIZE) {
            if (ops[i].h > maxtap) maxtap = ops[i].h;
            if (ops[i].w > maxtap) maxtap = ops[i].w;
        }
    int failed = 0;
    int par = n > 1 && n * (p.maxel > in_el ? p.maxel : in_el) > 32768;
#pragma omp parallel if (par)
    {
        float *a = malloc(sizeof(float) * (size_t)p.maxel);
        float *b = malloc(sizeof(float) * (size_t)p.maxel);
        tap *tx = malloc(sizeof(tap) * (size_t)maxtap), *ty = malloc(sizeof(tap) * (size_t)maxtap);
        if (!a || !b || !tx || !ty) {
#pragma omp atomic write
            failed = 1;
        } else {
#pragma omp for schedule(static)
            for (int64_t i = 0; i < n; i++) {
                int64_t r = idx[i];
                if (s8) { const unsigned char *q = s8 + r * in_el; for (int64_t k = 0; k < in_el; k++) a[k] = q[k]; }
                else memcpy(a, s32 + r * in_el, sizeof(float) * (size_t)in_el);
                float *res = run_one(a, b, h, w, c, ops, nops, seeds[i], tx, ty);
                char *dst = op + (size_t)(i * out_el) * osz;
                const int oh = p.h, ow = p.w, oc = p.c;
                if (odt == SP_FLOAT32) {
                    float *d = (float *)dst;
                    if (p.chw && oc > 1) {
                        for (int y = 0; y < oh; y++)
                            for (int x = 0; x < ow; x++)
                                for (int k = 0; k < oc; k++)
                                    d[((size_t)k * oh + y) * ow + x] = res[((size_t)y * ow + x) * oc + k];
                    } else {
                        memcpy(d, res, sizeof(float) * (size_t)out_el);
                    }
                } else {
                    for (int y = 0; y < oh; y++)
                        for (int x = 0; x < ow; x++)
                            for (int k = 0; k < oc; k++) {
                                size_t di = p.chw ? ((size_t)k * oh + y) * ow + x : ((size_t)y * ow + x) * oc + k;
                                sp_store_f64(odt, dst + di * osz, res[((size_t)y * ow + x) * oc + k]);
                            }
                }
            }
        }
        free(a);
        free(b);
        free(tx);
        free(ty);
    }
    free(seeds);
    if (failed) return sp_error(SP_ENOMEM, "image_batch: out of memory for working buffers");
    return SP_OK;
}
