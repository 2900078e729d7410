/* bf16_nn.c — Conv2d and Dense with bfloat16 operands and float32 accumulation (the CPU
 * kernels of sp_conv2d_forward_bf16 and friends; amp_level "O2"). Same signatures and
 * meaning as the float32 kernels (grad_x overwritten, grad_w / grad_b accumulated), every
 * matmul through sp_bf16_gemm (engine/cpu/bf16.c):
 *   conv forward   out[o, n]    = W[o, k] · col[k, n]          (n = image × output pixel)
 *   conv grad_x    gcol[k, n]   = Wᵀ[k, o] · gout[o, n], then col2im (1×1 stride-1 unpadded:
 *                                 straight into grad_x)
 *   conv grad_w    gW[o, k]    += gout[o, n] · colᵀ[n, k]
 * col is never materialised: the providers read x as im2col rows/columns while packing.
 * The bias gradients are float32 sums of grad_out. */
#include "cpu/nn_common.h"
#include "cpu/bf16.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- strided matrices ----------------------------------------------------- */
typedef struct { const float *p; int64_t rs, cs; } strided;
static void strided_row(const void *ctx, int64_t r, int64_t c0, int64_t cnt, float *dst) {
    const strided *s = ctx;
    const float *src = s->p + r * s->rs + c0 * s->cs;
    if (s->cs == 1) { memcpy(dst, src, (size_t)cnt * 4); return; }
    for (int64_t j = 0; j < cnt; j++) dst[j] = src[j * s->cs];
}
static const float *strided_ptr(const void *ctx, int64_t r, int64_t c0, int64_t cnt) {
    const strided *s = ctx;
    (void)cnt;
    return s->cs == 1 ? s->p + r * s->rs + c0 : NULL;
}
typedef struct { float *p; int64_t rs; const float *bias_col; int accumulate; } strided_out;
static void strided_store(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, const float *acc, int ld) {
    const strided_out *s = ctx;
    for (int i = 0; i < rows; i++) {
        float *d = s->p + (m0 + i) * s->rs + n0;
        const float *a = acc + i * ld;
        if (s->accumulate) for (int j = 0; j < cols; j++) d[j] += a[j];
        else if (s->bias_col) for (int j = 0; j < cols; j++) d[j] = a[j] + s->bias_col[n0 + j];
        else memcpy(d, a, (size_t)cols * 4);
    }
}
static float *strided_out_ptr(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, int64_t *ld) {
    const strided_out *s = ctx;
    (void)rows; (void)cols;
    if (s->accumulate || s->bias_col) return NULL;
    *ld = s->rs;
    return s->p + m0 * s->rs + n0;
}

/* ---- convolution geometry ------------------------------------------------- */
typedef struct {
    const float *x, *w;
    int64_t N, C, H, W, Co, Ho, Wo, kh, kw, Cg, Cog, Kc, HoWo;
    int sh, sw, pt, pl, dh, dw;
    int64_t cin0, co0; /* this group's first input / output channel */
} conv_geo;

/* im2col row k = (c, ki, kj) over columns n0.. (n = img*HoWo + oh*Wo + ow) */
static void col_row(const void *ctx, int64_t k, int64_t n0, int64_t cnt, float *dst) {
    const conv_geo *g = ctx;
    int64_t kj = k % g->kw, ki = (k / g->kw) % g->kh, c = k / (g->kw * g->kh);
    int64_t img = n0 / g->HoWo, pix = n0 % g->HoWo, oh = pix / g->Wo, ow = pix % g->Wo;
    int64_t j = 0;
    while (j < cnt) {
        int64_t seg = g->Wo - ow;
        if (seg > cnt - j) seg = cnt - j;
        int64_t ih = oh * g->sh - g->pt + ki * g->dh;
        if (ih < 0 || ih >= g->H) {
            memset(dst + j, 0, (size_t)seg * 4);
        } else {
            const float *xr = g->x + ((img * g->C + g->cin0 + c) * g->H + ih) * g->W;
            int64_t iw0 = ow * g->sw - g->pl + kj * g->dw;
            if (g->sw == 1) { /* zeros, one contiguous run, zeros */
                int64_t t0 = iw0 < 0 ? -iw0 : 0, t1 = g->W - iw0 < seg ? g->W - iw0 : seg;
                if (t1 < t0) t1 = t0;
                if (t0 > seg) t0 = t1 = seg;
                if (t0) memset(dst + j, 0, (size_t)t0 * 4);
                if (t1 > t0) memcpy(dst + j + t0, xr + iw0 + t0, (size_t)(t1 - t0) * 4);
                if (seg > t1) memset(dst + j + t1, 0, (size_t)(seg - t1) * 4);
            } else {
                for (int64_t t = 0; t < seg; t++) {
                    int64_t iw = iw0 + t * g->sw;
                    dst[j + t] = (iw >= 0 && iw < g->W) ? xr[iw] : 0.f;
                }
            }
        }
        j += seg;
        ow += seg;
        if (ow == g->Wo) { ow = 0; if (++oh == g->Ho) { oh = 0; img++; } }
    }
}
/* im2col rows k0..k0+nk-1 over columns n0..n0+cnt-1 into dst[(k - k0)*ld + j]: the columns
 * split into runs within one output row (decomposed once), k walked without division */
enum { SEGS = 64 };
typedef struct { const float *x; int64_t ih0, iw0, len, j; } col_seg;
static int col_segs(const conv_geo *g, int64_t n0, int64_t cnt, col_seg *seg) {
    int ns = 0;
    int64_t img = n0 / g->HoWo, pix = n0 % g->HoWo, oh = pix / g->Wo, ow = pix % g->Wo;
    for (int64_t j = 0; j < cnt;) {
        if (ns == SEGS) return -1; /* more runs than fit (a very narrow output) */
        int64_t len = g->Wo - ow < cnt - j ? g->Wo - ow : cnt - j;
        seg[ns].x = g->x + (img * g->C + g->cin0) * g->H * g->W;
        seg[ns].ih0 = oh * g->sh - g->pt; seg[ns].iw0 = ow * g->sw - g->pl;
        seg[ns].len = len; seg[ns].j = j;
        ns++;
        j += len; ow += len;
        if (ow == g->Wo) { ow = 0; if (++oh == g->Ho) { oh = 0; img++; } }
    }
    return ns;
}
static void col_block(const void *ctx, int64_t k0, int64_t nk, int64_t n0, int64_t cnt, float *dst, int ld) {
    const conv_geo *g = ctx;
    col_seg seg[SEGS];
    int ns = col_segs(g, n0, cnt, seg);
    if (ns < 0) {
        for (int64_t r = 0; r < nk; r++) col_row(ctx, k0 + r, n0, cnt, dst + r * ld);
        return;
    }
    int64_t kj = k0 % g->kw, ki = (k0 / g->kw) % g->kh, c = k0 / (g->kw * g->kh);
    for (int64_t r = 0; r < nk; r++) {
        float *d = dst + r * ld;
        for (int s = 0; s < ns; s++) {
            int64_t ih = seg[s].ih0 + ki * g->dh, len = seg[s].len;
            float *o = d + seg[s].j;
            if (ih < 0 || ih >= g->H) { memset(o, 0, (size_t)len * 4); continue; }
            const float *xr = seg[s].x + (c * g->H + ih) * g->W;
            int64_t iw0 = seg[s].iw0 + kj * g->dw;
            if (g->sw == 1) {
                int64_t t0 = iw0 < 0 ? -iw0 : 0, t1 = g->W - iw0 < len ? g->W - iw0 : len;
                if (t1 < t0) t1 = t0;
                if (t0 > len) t0 = t1 = len;
                for (int64_t t = 0; t < t0; t++) o[t] = 0.f;
                for (int64_t t = t0; t < t1; t++) o[t] = xr[iw0 + t];
                for (int64_t t = t1; t < len; t++) o[t] = 0.f;
            } else {
                for (int64_t t = 0; t < len; t++) {
                    int64_t iw = iw0 + t * g->sw;
                    o[t] = (iw >= 0 && iw < g->W) ? xr[iw] : 0.f;
                }
            }
        }
        if (++kj == g->kw) { kj = 0; if (++ki == g->kh) { ki = 0; c++; } }
    }
}
#if defined(__x86_64__)
/* the same with AVX-512 masked loads (stride 1) and gathers (other strides), 16 columns at a
 * time: the runs are short (7 to 56 columns in ResNet) and the plain loops ran scalar there */
__attribute__((target("avx512f,avx512bw,bmi2")))
static void col_block_avx512(const void *ctx, int64_t k0, int64_t nk, int64_t n0, int64_t cnt, float *dst, int ld) {
    const conv_geo *g = ctx;
    col_seg seg[SEGS];
    int ns = col_segs(g, n0, cnt, seg);
    if (ns < 0 || g->W >= ((int64_t)1 << 30) / (g->sw > 0 ? g->sw : 1)) {
        col_block(ctx, k0, nk, n0, cnt, dst, ld);
        return;
    }
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i vsw = _mm512_set1_epi32(g->sw), vW = _mm512_set1_epi32((int)g->W);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t kj = k0 % g->kw, ki = (k0 / g->kw) % g->kh, c = k0 / (g->kw * g->kh);
    for (int64_t r = 0; r < nk; r++) {
        float *d = dst + r * ld;
        for (int s = 0; s < ns; s++) {
            int64_t ih = seg[s].ih0 + ki * g->dh, len = seg[s].len;
            float *o = d + seg[s].j;
            if (ih < 0 || ih >= g->H) {
                for (int64_t t = 0; t < len; t += 16) {
                    __mmask16 st = len - t >= 16 ? 0xffff : (__mmask16)((1u << (len - t)) - 1);
                    _mm512_mask_storeu_ps(o + t, st, _mm512_setzero_ps());
                }
                continue;
            }
            const float *xr = seg[s].x + (c * g->H + ih) * g->W;
            int64_t iw0 = seg[s].iw0 + kj * g->dw;
            for (int64_t t = 0; t < len; t += 16) {
                __mmask16 st = len - t >= 16 ? 0xffff : (__mmask16)((1u << (len - t)) - 1);
                /* lanes whose input column iw0 + (t + l)*sw is inside the row */
                __m512i iw = _mm512_add_epi32(_mm512_set1_epi32((int)(iw0 + (t * g->sw))), _mm512_mullo_epi32(lane, vsw));
                __mmask16 in = _mm512_mask_cmpge_epi32_mask(st, iw, _mm512_setzero_si512()) & _mm512_cmplt_epi32_mask(iw, vW);
                __m512 v;
                if (g->sw == 1) v = _mm512_maskz_loadu_ps(in, xr + iw0 + t);
                else if (g->sw == 2) {
                    /* the even ones of 32 consecutive inputs; a lane loads input 2l (lo) or
                     * 2l - 32 (hi) when that input is a wanted in-row one */
                    const float *base = xr + iw0 + 2 * t;
                    __mmask32 want = (__mmask32)_pdep_u32((unsigned)in, 0x55555555u);
                    __m512 lo = _mm512_maskz_loadu_ps((__mmask16)want, base);
                    __m512 hi = _mm512_maskz_loadu_ps((__mmask16)(want >> 16), base + 16);
                    v = _mm512_permutex2var_ps(lo, even, hi);
                } else v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in, iw, xr, 4);
                _mm512_mask_storeu_ps(o + t, st, v);
            }
        }
        if (++kj == g->kw) { kj = 0; if (++ki == g->kh) { ki = 0; c++; } }
    }
}
#endif
/* the im2col row segment as a pointer into x when it is one contiguous in-bounds run */
static const float *col_ptr(const void *ctx, int64_t k, int64_t n0, int64_t cnt) {
    const conv_geo *g = ctx;
    if (g->sw != 1) return NULL;
    int64_t pix = n0 % g->HoWo, ow = pix % g->Wo;
    int one_row = ow + cnt <= g->Wo;
    int whole = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->pt == 0 && g->pl == 0 && g->Wo == g->W && g->Ho == g->H;
    if (!one_row && !(whole && pix + cnt <= g->HoWo)) return NULL;
    int64_t kj = k % g->kw, ki = (k / g->kw) % g->kh, c = k / (g->kw * g->kh);
    int64_t img = n0 / g->HoWo, oh = pix / g->Wo;
    int64_t ih = oh * g->sh - g->pt + ki * g->dh, iw0 = ow - g->pl + kj * g->dw;
    if (whole) return g->x + ((img * g->C + g->cin0 + c) * g->H) * g->W + pix;
    if (ih < 0 || ih >= g->H || iw0 < 0 || iw0 + cnt > g->W) return NULL;
    return g->x + ((img * g->C + g->cin0 + c) * g->H + ih) * g->W + iw0;
}
/* im2col transposed: row n (one output pixel of one image), columns k0.. (c, ki, kj) */
static void colT_row(const void *ctx, int64_t n, int64_t k0, int64_t cnt, float *dst) {
    const conv_geo *g = ctx;
    int64_t img = n / g->HoWo, pix = n % g->HoWo, oh = pix / g->Wo, ow = pix % g->Wo;
    int64_t kj = k0 % g->kw, ki = (k0 / g->kw) % g->kh, c = k0 / (g->kw * g->kh);
    int64_t ih0 = oh * g->sh - g->pt, iw0 = ow * g->sw - g->pl;
    const float *xi = g->x + (img * g->C + g->cin0) * g->H * g->W;
    for (int64_t j = 0; j < cnt; j++) {
        int64_t ih = ih0 + ki * g->dh, iw = iw0 + kj * g->dw;
        dst[j] = (ih >= 0 && ih < g->H && iw >= 0 && iw < g->W) ? xi[(c * g->H + ih) * g->W + iw] : 0.f;
        if (++kj == g->kw) { kj = 0; if (++ki == g->kh) { ki = 0; c++; } }
    }
}
/* an NCHW tensor t [N, Ct, Ho*Wo] seen as the matrix [channel, n]: row r = channel ch0 + r */
typedef struct { const float *t; int64_t Ct, ch0, HW; } nchw_mat;
static void nchw_row(const void *ctx, int64_t r, int64_t n0, int64_t cnt, float *dst) {
    const nchw_mat *m = ctx;
    int64_t img = n0 / m->HW, pix = n0 % m->HW, j = 0;
    while (j < cnt) {
        int64_t seg = m->HW - pix;
        if (seg > cnt - j) seg = cnt - j;
        memcpy(dst + j, m->t + (img * m->Ct + m->ch0 + r) * m->HW + pix, (size_t)seg * 4);
        j += seg; pix = 0; img++;
    }
}
static const float *nchw_ptr(const void *ctx, int64_t r, int64_t n0, int64_t cnt) {
    const nchw_mat *m = ctx;
    int64_t img = n0 / m->HW, pix = n0 % m->HW;
    return pix + cnt <= m->HW ? m->t + (img * m->Ct + m->ch0 + r) * m->HW + pix : NULL;
}
typedef struct { float *t; int64_t Ct, ch0, HW; const float *bias_row; } nchw_out;
static void nchw_store(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, const float *acc, int ld) {
    const nchw_out *o = ctx;
    int64_t img0 = n0 / o->HW, pix0 = n0 % o->HW;
    for (int i = 0; i < rows; i++) {
        float b = o->bias_row ? o->bias_row[m0 + i] : 0.f;
        int64_t img = img0, pix = pix0, j = 0;
        while (j < cols) {
            int64_t seg = o->HW - pix;
            if (seg > cols - j) seg = cols - j;
            float *d = o->t + (img * o->Ct + o->ch0 + m0 + i) * o->HW + pix;
            const float *a = acc + i * ld + j;
            for (int64_t t = 0; t < seg; t++) d[t] = a[t] + b;
            j += seg; pix = 0; img++;
        }
    }
}

static float *nchw_out_ptr(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, int64_t *ld) {
    const nchw_out *o = ctx;
    (void)rows;
    if (o->bias_row) return NULL;
    int64_t img = n0 / o->HW, pix = n0 % o->HW;
    if (pix + cols > o->HW) return NULL;
    *ld = o->HW;
    return o->t + (img * o->Ct + o->ch0 + m0) * o->HW + pix;
}

static void geo_init(conv_geo *g, const sp_tensor *x, const sp_tensor *w, int64_t Ho, int64_t Wo, int sh, int sw,
                     int pt, int pl, int dh, int dw, int groups) {
    memset(g, 0, sizeof *g);
    g->x = F32(x); g->w = F32(w);
    g->N = x->shape[0]; g->C = x->shape[1]; g->H = x->shape[2]; g->W = x->shape[3];
    g->Co = w->shape[0]; g->kh = w->shape[2]; g->kw = w->shape[3];
    g->Ho = Ho; g->Wo = Wo; g->HoWo = Ho * Wo;
    g->Cg = g->C / groups; g->Cog = g->Co / groups; g->Kc = g->Cg * g->kh * g->kw;
    g->sh = sh; g->sw = sw; g->pt = pt; g->pl = pl; g->dh = dh; g->dw = dw;
}

/* ---- convolution on x converted to bf16 channel pairs ----------------------
 * xp[img][c2][h][w] = bf16(x[img][2 c2][h][w]) | bf16(x[img][2 c2 + 1][h][w]) << 16 (past C:
 * zero). With K ordered (c2, ki, kj, c & 1), the pair rows of B are im2col rows of xp, copied
 * as 32-bit patterns (col_block on a geometry of C2 channels): each input is rounded once,
 * not once per kernel tap, and no pair interleaving is left to do per panel. */
typedef struct { const float *w; int64_t Cg, kh, kw, C2; } wpairs;
/* weight row o in that K order (the GEMM asks for whole rows) */
static void wpairs_row(const void *ctx, int64_t o, int64_t c0, int64_t cnt, float *dst) {
    const wpairs *p = ctx;
    int64_t khw = p->kh * p->kw, K = 2 * p->C2 * khw;
    const float *wo = p->w + o * p->Cg * khw;
    if (c0 != 0 || cnt != K) { /* a part of the row (not asked for by sp_bf16_gemm) */
        for (int64_t j = c0; j < c0 + cnt; j++) {
            int64_t pr = j / 2, c = 2 * (pr / khw) + (j & 1), t = pr % khw;
            dst[j - c0] = c < p->Cg ? wo[c * khw + t] : 0.f;
        }
        return;
    }
    for (int64_t c2 = 0; c2 < p->C2; c2++) {
        const float *w0 = wo + 2 * c2 * khw, *w1 = w0 + khw;
        float *d = dst + 2 * c2 * khw;
        if (2 * c2 + 1 < p->Cg) for (int64_t t = 0; t < khw; t++) { d[2 * t] = w0[t]; d[2 * t + 1] = w1[t]; }
        else for (int64_t t = 0; t < khw; t++) { d[2 * t] = w0[t]; d[2 * t + 1] = 0.f; }
    }
}
static void xp_pairs(const void *ctx, int64_t p0, int64_t np, int64_t n0, int64_t cnt, uint32_t *dst, int ld) {
    col_block(ctx, p0, np, n0, cnt, (float *)(void *)dst, ld);
}
#if defined(__x86_64__)
static void xp_pairs_avx512(const void *ctx, int64_t p0, int64_t np, int64_t n0, int64_t cnt, uint32_t *dst, int ld) {
    col_block_avx512(ctx, p0, np, n0, cnt, (float *)(void *)dst, ld);
}
#endif

sp_status sp_cpu_conv2d_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                     int sh, int sw, int pt, int pb, int pl, int pr, int dh, int dw, int groups) {
    sp_status st;
    if (sp_cpu_dnnl_conv_forward(&st, out, x, w, bias, NULL, NULL, NULL, NULL, 0.0, NULL, 0, sh, sw, pt, pb, pl, pr, dh,
                                 dw, groups, 1, "conv2d_forward_bf16"))
        return st;
    if (SP_CL_ANY(out, x)) /* channels-last operands oneDNN did not take: NCHW copies */
        return sp_cl_conv_forward(sp_cpu_conv2d_forward_bf16, out, x, w, bias, sh, sw, pt, pb, pl, pr, dh, dw, groups);
    conv_geo g;
    geo_init(&g, x, w, out->shape[2], out->shape[3], sh, sw, pt, pl, dh, dw, groups);
    sp_device *dev = SP_DEV(x);
    int whole = g.kh == 1 && g.kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && g.Ho == g.H && g.Wo == g.W;
    int avx = sp_cpu_bf16_kernel() != SP_BF16_PORTABLE;
    /* the bf16-pairs path where B (im2col) is the bigger operand: early layers, larger
     * batches; the deep layers at small batch keep the weights (A) read in place */
    if (!whole && groups == 1 && g.N * g.HoWo >= g.Co) {
        int64_t C2 = (g.C + 1) / 2, HW = g.H * g.W, planes = g.N * C2;
        size_t n = (size_t)planes * (size_t)HW * 4;
        uint32_t *xp = sp_workspace(dev, 2, n);
        if (!xp) return sp_error(SP_ENOMEM, "conv2d_forward_bf16: no memory for the bf16 input (%zu bytes)", n);
        const float *xf = g.x;
#pragma omp parallel for schedule(static) if (planes * HW > ((int64_t)1 << 18))
        for (int64_t q = 0; q < planes; q++) {
            int64_t img = q / C2, c = 2 * (q % C2);
            const float *r0 = xf + (img * g.C + c) * HW;
            sp_bf16_pack_pairs(xp + q * HW, r0, c + 1 < g.C ? r0 + HW : NULL, HW);
        }
        conv_geo gp = g;
        gp.x = (const float *)(const void *)xp;
        gp.C = C2; gp.Cg = C2; gp.cin0 = 0;
        wpairs wp = { g.w, g.Cg, g.kh, g.kw, C2 };
        sp_bf16_rows A = { .row = wpairs_row, .ctx = &wp }, B = { .ctx = &gp };
#if defined(__x86_64__)
        B.pairs = avx ? xp_pairs_avx512 : xp_pairs;
#else
        B.pairs = xp_pairs;
#endif
        nchw_out o = { F32(out), g.Co, 0, g.HoWo, bias ? F32(bias) : NULL };
        sp_bf16_tile Ct = { .store = nchw_store, .ptr = nchw_out_ptr, .ctx = &o };
        return sp_bf16_gemm(dev, g.Co, g.N * g.HoWo, 2 * C2 * g.kh * g.kw, &A, &B, &Ct);
    }
    for (int gi = 0; gi < groups; gi++) {
        g.cin0 = gi * g.Cg; g.co0 = gi * g.Cog;
        strided wa = { g.w + g.co0 * g.Kc, g.Kc, 1 };
        sp_bf16_rows A = { .row = strided_row, .ptr = strided_ptr, .ctx = &wa }, B = { .row = col_row, .ptr = col_ptr, .ctx = &g };
        /* 1x1 stride 1 unpadded: B's rows are x's, read in place */
#if defined(__x86_64__)
        if (!whole) B.block = avx ? col_block_avx512 : col_block;
#else
        if (!whole) B.block = col_block;
#endif
        nchw_out o = { F32(out), g.Co, g.co0, g.HoWo, bias ? F32(bias) + g.co0 : NULL };
        sp_bf16_tile Ct = { .store = nchw_store, .ptr = nchw_out_ptr, .ctx = &o };
        NN_TRY(sp_bf16_gemm(dev, g.Cog, g.N * g.HoWo, g.Kc, &A, &B, &Ct));
    }
    return SP_OK;
}

/* col2im of gcol [Kc, N*HoWo] (this group) into grad_x, each (image, channel) plane by one thread */
static void col2im(const conv_geo *g, const float *gcol, float *gx) {
    int64_t planes = g->N * g->Cg, Ntot = g->N * g->HoWo;
#pragma omp parallel for schedule(static) if (planes * g->HoWo * g->kh * g->kw > ((int64_t)1 << 20))
    for (int64_t pidx = 0; pidx < planes; pidx++) {
        int64_t img = pidx / g->Cg, c = pidx % g->Cg;
        float *plane = gx + (img * g->C + g->cin0 + c) * g->H * g->W;
        memset(plane, 0, (size_t)(g->H * g->W) * 4);
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) {
                const float *src = gcol + ((c * g->kh + ki) * g->kw + kj) * Ntot + img * g->HoWo;
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * g->sh - g->pt + ki * g->dh;
                    if (ih < 0 || ih >= g->H) continue;
                    float *dr = plane + ih * g->W;
                    const float *sr = src + oh * g->Wo;
                    for (int64_t ow = 0; ow < g->Wo; ow++) {
                        int64_t iw = ow * g->sw - g->pl + kj * g->dw;
                        if (iw >= 0 && iw < g->W) dr[iw] += sr[ow];
                    }
                }
            }
    }
}

sp_status sp_cpu_conv2d_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                      const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, int sh,
                                      int sw, int pt, int pb, int pl, int pr, int dh, int dw, int groups) {
    conv_geo g;
    geo_init(&g, x, w, grad_out->shape[2], grad_out->shape[3], sh, sw, pt, pl, dh, dw, groups);
    sp_device *dev = SP_DEV(x);
    int64_t Ntot = g.N * g.HoWo;
    const float *go = F32(grad_out);
    if (grad_b) {
        float *gb = F32(grad_b);
        for (int64_t o = 0; o < g.Co; o++) {
            double s = 0;
            for (int64_t img = 0; img < g.N; img++) {
                const float *p = go + (img * g.Co + o) * g.HoWo;
                for (int64_t t = 0; t < g.HoWo; t++) s += p[t];
            }
            gb[o] += (float)s;
        }
    }
    int direct = g.kh == 1 && g.kw == 1 && sh == 1 && sw == 1 && pt == 0 && pb == 0 && pl == 0 && pr == 0;
    for (int gi = 0; gi < groups; gi++) {
        g.cin0 = gi * g.Cg; g.co0 = gi * g.Cog;
        nchw_mat gom = { go, g.Co, g.co0, g.HoWo };
        if (grad_w) {
            sp_bf16_rows A = { .row = nchw_row, .ctx = &gom }, B = { .row = colT_row, .ctx = &g };
            strided_out o = { F32(grad_w) + g.co0 * g.Kc, g.Kc, NULL, 1 };
            sp_bf16_tile Ct = { .store = strided_store, .ptr = strided_out_ptr, .ctx = &o };
            NN_TRY(sp_bf16_gemm(dev, g.Cog, g.Kc, Ntot, &A, &B, &Ct));
        }
        if (grad_x) {
            strided wt = { g.w + g.co0 * g.Kc, 1, g.Kc }; /* Wᵀ: row k, column o */
            sp_bf16_rows A = { .row = strided_row, .ctx = &wt }, B = { .row = nchw_row, .ptr = nchw_ptr, .ctx = &gom };
            if (direct) {
                nchw_out o = { F32(grad_x), g.C, g.cin0, g.HoWo, NULL };
                sp_bf16_tile Ct = { .store = nchw_store, .ptr = nchw_out_ptr, .ctx = &o };
                NN_TRY(sp_bf16_gemm(dev, g.Kc, Ntot, g.Cog, &A, &B, &Ct));
            } else {
                size_t n = (size_t)g.Kc * (size_t)Ntot * 4;
                float *gcol = sp_workspace(dev, 2, n);
                if (!gcol) return sp_error(SP_ENOMEM, "conv2d_backward_bf16: no memory for the column gradient (%zu bytes)", n);
                strided_out o = { gcol, Ntot, NULL, 0 };
                sp_bf16_tile Ct = { .store = strided_store, .ptr = strided_out_ptr, .ctx = &o };
                NN_TRY(sp_bf16_gemm(dev, g.Kc, Ntot, g.Cog, &A, &B, &Ct));
                col2im(&g, gcol, F32(grad_x));
            }
        }
    }
    return SP_OK;
}

/* outᵀ: C(o, n) into out[n, o] (+ bias[o]) */
typedef struct { float *p; int64_t O; const float *bias; } dense_outT;
static void dense_storeT(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, const float *acc, int ld) {
    const dense_outT *s = ctx;
    for (int j = 0; j < cols; j++) {
        float *d = s->p + (n0 + j) * s->O + m0;
        for (int i = 0; i < rows; i++) d[i] = acc[i * ld + j] + (s->bias ? s->bias[m0 + i] : 0.f);
    }
}

sp_status sp_cpu_dense_forward_bf16(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias) {
    int64_t N = x->shape[0], I = x->shape[1], O = w->shape[0];
    if (sp_bf16_dense_rows_applies(N))
        return sp_bf16_dense_rows(SP_DEV(x), F32(out), F32(x), F32(w), bias ? F32(bias) : NULL, N, I, O);
    if (N < O) {
        /* fewer images than outputs (a classifier head at small batch): outᵀ = W · xᵀ, so that
         * the weights are the GEMM's A, read in place row by row, not gathered column-wise */
        strided wa = { F32(w), I, 1 }, xb = { F32(x), 1, I };
        sp_bf16_rows A = { .row = strided_row, .ptr = strided_ptr, .ctx = &wa }, B = { .row = strided_row, .ptr = strided_ptr, .ctx = &xb };
        dense_outT o = { F32(out), O, bias ? F32(bias) : NULL };
        sp_bf16_tile Ct = { .store = dense_storeT, .ctx = &o };
        return sp_bf16_gemm(SP_DEV(x), O, N, I, &A, &B, &Ct);
    }
    strided xa = { F32(x), I, 1 }, wb = { F32(w), 1, I };
    sp_bf16_rows A = { .row = strided_row, .ptr = strided_ptr, .ctx = &xa }, B = { .row = strided_row, .ptr = strided_ptr, .ctx = &wb };
    strided_out o = { F32(out), O, bias ? F32(bias) : NULL, 0 };
    sp_bf16_tile Ct = { .store = strided_store, .ptr = strided_out_ptr, .ctx = &o };
    return sp_bf16_gemm(SP_DEV(x), N, O, I, &A, &B, &Ct);
}

sp_status sp_cpu_dense_backward_bf16(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                     const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w) {
    int64_t N = x->shape[0], I = x->shape[1], O = w->shape[0];
    const float *go = F32(grad_out);
    sp_device *dev = SP_DEV(x);
    if (grad_b) {
        float *gb = F32(grad_b);
        for (int64_t o = 0; o < O; o++) {
            double s = 0;
            for (int64_t b = 0; b < N; b++) s += go[b * O + o];
            gb[o] += (float)s;
        }
    }
    if (grad_w) {
        strided ga = { go, 1, O }, xb = { F32(x), I, 1 };
        sp_bf16_rows A = { .row = strided_row, .ptr = strided_ptr, .ctx = &ga }, B = { .row = strided_row, .ptr = strided_ptr, .ctx = &xb };
        strided_out o = { F32(grad_w), I, NULL, 1 };
        sp_bf16_tile Ct = { .store = strided_store, .ptr = strided_out_ptr, .ctx = &o };
        NN_TRY(sp_bf16_gemm(dev, O, I, N, &A, &B, &Ct));
    }
    if (grad_x) {
        strided ga = { go, O, 1 }, wb = { F32(w), I, 1 };
        sp_bf16_rows A = { .row = strided_row, .ptr = strided_ptr, .ctx = &ga }, B = { .row = strided_row, .ptr = strided_ptr, .ctx = &wb };
        strided_out o = { F32(grad_x), I, NULL, 0 };
        sp_bf16_tile Ct = { .store = strided_store, .ptr = strided_out_ptr, .ctx = &o };
        NN_TRY(sp_bf16_gemm(dev, N, I, O, &A, &B, &Ct));
    }
    return SP_OK;
}
