/* conv_dnnl.c — float32 Conv2d on the CPU through oneDNN (Debian's libdnnl, OpenMP build):
 * the "real part" for convolutions, as cuDNN is on CUDA. oneDNN's AVX-512 kernels (brgconv)
 * work on blocked layouts (nChw16c activations, OIhw16i16o weights); spore's tensors stay
 * NCHW, so each call reorders its operands in and its result out with oneDNN's reorders
 * (measured on ResNet50's layers at batch 1: 25.7 ms of convolution in blocked form against
 * 54 ms for oneDNN's own plain-NCHW GEMM path; the reorders cost 6-8 ms).
 *
 * Primitives are made once per geometry (JIT code) and kept in a small table; scratch comes
 * from the device workspace (slots 0-3), oneDNN's scratchpad included (user mode), so calls
 * from several threads share nothing but the immutable primitives.
 *
 * The eval-mode fusion (sp_conv2d_bn_forward) rides on oneDNN's post-ops: BatchNorm's fold
 * as a per-channel multiply and add, the residual as a binary add read in place where it is
 * in the primitive's destination layout and a direct JIT kernel runs it (else as a sum: the
 * residual reordered or copied into the destination first), ReLU as an eltwise. Measured on
 * ResNet50's bf16 forward at batch 8 (alternating runs): 113-128 -> 101-104 ms, the copies
 * of the residual (22 MB an image) gone. Gradients accumulate (grad_w += through a reorder
 * with a sum post-op, grad_b += by hand), as spore's own kernels do.
 *
 * Channels-last operands (spore.nn's chains, sp_tensor_empty_channels_last_on) are
 * read and written in place by an NHWC primitive: no activation reorders at all. Under
 * SP_CONV_AUTO (the default) only such calls come here; SP_CONV_ONEDNN sends every layer.
 *
 * Without SP_HAVE_DNNL (make DNNL=0) only the selector below exists; its default is "spore"
 * and "auto" runs spore's kernels. */
#include "nn_common.h"
#include "cpu/bf16.h"

#include <math.h>
#include <pthread.h>

/* the default: measured fastest here (README, Benchmarks); spore's kernels without oneDNN */
#ifdef SP_HAVE_DNNL
static int conv_kernel_sel = SP_CONV_AUTO;
#else
static int conv_kernel_sel = SP_CONV_SPORE;
#endif
long sp_dnnl_wino_runs; /* nn_common.h */
int sp_gemm1x1_off;
long sp_dnnl_gemm_runs;
int sp_cvt_bf16_off; /* nn_common.h */
long sp_cvt_bf16_runs, sp_dnnl_resbin_runs;

#ifdef SP_HAVE_DNNL
#include <dnnl.h>

/* ---- float32 -> bf16 for a dense NHWC operand ------------------------------------------
 * A bf16 forward's input reorder (NHWC float32 -> NHWC bf16) is an elementwise rounding of
 * contiguous memory. oneDNN's jit:uni reorder ran it at 3 G elements/s here (DNNL_VERBOSE,
 * ResNet50 at batch 1: 2.4 ms of a 15.9 ms forward in 53 reorders). bf16.c's rounding loop
 * (sp_bf16_round_avx512: the same instruction, vcvtne2ps2bf16, nearest even, float32
 * denormals flushed to zero, NaN kept NaN) runs it here in chunks, on libgomp's pool above
 * CVT_PAR elements. Only where the CPU has AVX512_BF16
 * (elsewhere oneDNN's reorder emulates it). sp_cvt_bf16_off (a hidden test hook) runs oneDNN's
 * reorder instead; sp_cvt_bf16_runs counts the loop's calls. */
enum { CVT_PAR = 1 << 16, CVT_CHUNK = 1 << 14 };
static void cvt_bf16(uint16_t *d, const float *s, int64_t n) {
    __atomic_add_fetch(&sp_cvt_bf16_runs, 1, __ATOMIC_RELAXED);
    int64_t nc = (n + CVT_CHUNK - 1) / CVT_CHUNK;
#pragma omp parallel for schedule(static) if (n > CVT_PAR)
    for (int64_t c = 0; c < nc; c++) {
        int64_t i0 = c * CVT_CHUNK, k = n - i0 < CVT_CHUNK ? n - i0 : CVT_CHUNK;
        sp_bf16_round_avx512(d + i0, s + i0, k);
    }
}

static dnnl_engine_t g_eng;
static int g_eng_ok;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_stream_key;

static void stream_free(void *s) { if (s) dnnl_stream_destroy((dnnl_stream_t)s); }
static void eng_init(void) {
    g_eng_ok = dnnl_engine_create(&g_eng, dnnl_cpu, 0) == dnnl_success &&
               pthread_key_create(&g_stream_key, stream_free) == 0;
}
static int dn_available(void) {
    pthread_once(&g_once, eng_init);
    return g_eng_ok;
}
/* this thread's stream (freed when the thread ends) */
static dnnl_stream_t dn_stream(void) {
    dnnl_stream_t s = pthread_getspecific(g_stream_key);
    if (!s) {
        if (dnnl_stream_create(&s, g_eng, dnnl_stream_default_flags) != dnnl_success) return NULL;
        pthread_setspecific(g_stream_key, s);
    }
    return s;
}

enum { DN_FWD = 0, DN_BWD_DATA = 1, DN_BWD_W = 2 };
/* forward epilogue flags */
enum { EPI_BN = 1, EPI_RES = 2, EPI_RELU = 4, HAS_BIAS = 8, BF16 = 16 };
/* channels-last (NHWC) user tensors: the forward's x, out and residual. With any of them the
 * primitive itself works in NHWC, which oneDNN's AVX-512/AMX kernels (brgconv) run as fast
 * as the blocked layouts, so a chain of channels-last convolutions runs with no activation
 * reorders at all. */
enum { CL_X = 32, CL_OUT = 64, CL_RES = 128 };
/* the backward's: x, grad_out (in the forward's out position) and grad_x */
enum { CL_GX = 256 };
/* the residual overlaps out: summed in place (post-op sum), not read as a binary operand */
enum { RES_SUM = 512 };
/* bfloat16 activations (O2 inference, spore.nn.chain; always channels-last, engine/ops): x read
 * as the primitive's bf16 source with no rounding pass, out written by the primitive in bf16
 * (the float32 epilogue's result rounded once, nearest even), the residual read in bf16 */
enum { X_BF16 = 1024, OUT_BF16 = 2048, RES_BF16 = 4096 };
enum { DN_KEY = 19, DN_CACHE = 512 };

typedef struct {
    int64_t key[DN_KEY];
    int ok;                       /* 0: oneDNN declined this geometry (spore's kernels run it) */
    dnnl_primitive_t prim;
    /* plain <-> the primitive's layouts; NULL where the layout already is the plain one */
    dnnl_primitive_t r_a, r_b, r_out, r_res;
    dnnl_memory_desc_t md_a, md_b, md_out; /* the primitive's: fwd src/w/dst, bwd-data diff_dst/w/diff_src,
                                            * bwd-w src/diff_dst/diff_w */
    size_t sz_a, sz_b, sz_out, scratch;
    int wino;                     /* oneDNN's Winograd primitive (wino_wanted) */
    int res_bin;                  /* the residual is a binary-add post-op's operand, read in place */
    int cvt_a;                    /* r_a only rounds dense NHWC float32 to NHWC bf16: cvt_bf16 runs it */
} dn_entry;

static dn_entry *g_cache[DN_CACHE];
static int g_ncache;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static void entry_free(dn_entry *e) {
    if (!e) return;
    dnnl_primitive_t ps[] = {e->prim, e->r_a, e->r_b, e->r_out, e->r_res};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        if (ps[i]) dnnl_primitive_destroy(ps[i]);
    free(e);
}

static dn_entry *cache_find(const int64_t *key) {
    for (int i = 0; i < g_ncache; i++)
        if (!memcmp(g_cache[i]->key, key, sizeof(int64_t) * DN_KEY)) return g_cache[i];
    return NULL;
}

#define DN(x) ((x) == dnnl_success)

/* a reorder from md `from` to md `to` (sum: to += from), NULL with *ok 1 when they are equal
 * and no sum is asked; *ok 0 when oneDNN cannot make it */
static dnnl_primitive_t mk_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int sum, int *ok) {
    if (!sum && dnnl_memory_desc_equal(from, to)) return NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t p = NULL;
    if (sum) {
        if (!DN(dnnl_primitive_attr_create(&attr)) || !DN(dnnl_post_ops_create(&po)) ||
            !DN(dnnl_post_ops_append_sum(po, 1.0f)) || !DN(dnnl_primitive_attr_set_post_ops(attr, po)))
            *ok = 0;
    }
    if (*ok && (!DN(dnnl_reorder_primitive_desc_create(&pd, from, g_eng, to, g_eng, attr)) ||
                !DN(dnnl_primitive_create(&p, pd))))
        *ok = 0, p = NULL;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return p;
}

static void plain_mds(const conv_geom *c, dnnl_memory_desc_t *src, dnnl_memory_desc_t *w, dnnl_memory_desc_t *dst,
                      dnnl_memory_desc_t *b, dnnl_format_tag_t tag) {
    dnnl_dims_t sd = {c->N, c->C, c->H, c->W}, dd = {c->N, c->Co, c->Ho, c->Wo}, bd = {c->Co};
    dnnl_memory_desc_init_by_tag(src, 4, sd, dnnl_f32, tag);
    dnnl_memory_desc_init_by_tag(dst, 4, dd, dnnl_f32, tag);
    if (b) dnnl_memory_desc_init_by_tag(b, 1, bd, dnnl_f32, tag == dnnl_format_tag_any ? dnnl_format_tag_any : dnnl_a);
    if (c->g == 1) {
        dnnl_dims_t wd = {c->Co, c->C, c->kh, c->kw};
        dnnl_memory_desc_init_by_tag(w, 4, wd, dnnl_f32, tag == dnnl_format_tag_any ? tag : dnnl_oihw);
    } else {
        dnnl_dims_t wd = {c->g, c->Co / c->g, c->C / c->g, c->kh, c->kw};
        dnnl_memory_desc_init_by_tag(w, 5, wd, dnnl_f32, tag == dnnl_format_tag_any ? tag : dnnl_goihw);
    }
}

/* the user's x and out mds in their layouts (flags CL_X, CL_OUT), and the residual's (CL_RES) */
static void user_mds(const conv_geom *c, int flags, dnnl_memory_desc_t *src, dnnl_memory_desc_t *w,
                     dnnl_memory_desc_t *dst, dnnl_memory_desc_t *b, dnnl_memory_desc_t *res) {
    plain_mds(c, src, w, dst, b, dnnl_nchw);
    dnnl_dims_t sd = {c->N, c->C, c->H, c->W}, dd = {c->N, c->Co, c->Ho, c->Wo};
    if (flags & CL_X) dnnl_memory_desc_init_by_tag(src, 4, sd, (flags & X_BF16) ? dnnl_bf16 : dnnl_f32, dnnl_nhwc);
    if (res)
        dnnl_memory_desc_init_by_tag(res, 4, dd, (flags & RES_BF16) ? dnnl_bf16 : dnnl_f32,
                                     (flags & CL_RES) ? dnnl_nhwc : dnnl_nchw);
    if (flags & CL_OUT) dnnl_memory_desc_init_by_tag(dst, 4, dd, (flags & OUT_BF16) ? dnnl_bf16 : dnnl_f32, dnnl_nhwc);
}
/* the backward's user mds: x (CL_X), grad_out (CL_OUT) and grad_x (CL_GX) */
static void user_bwd_mds(const conv_geom *c, int flags, dnnl_memory_desc_t *x, dnnl_memory_desc_t *w,
                         dnnl_memory_desc_t *gout, dnnl_memory_desc_t *b, dnnl_memory_desc_t *gx) {
    user_mds(c, flags, x, w, gout, b, NULL);
    dnnl_dims_t sd = {c->N, c->C, c->H, c->W};
    dnnl_memory_desc_init_by_tag(gx, 4, sd, dnnl_f32, (flags & CL_GX) ? dnnl_nhwc : dnnl_nchw);
}

/* oneDNN's Winograd F(4x4, 3x3) (jit_wino_4x3) for a plain float32 convolution's forward and
 * both gradients: 3x3, stride 1, no dilation, one group, 16 channels or more, and at least
 * WINO_TILES 4x4 output tiles over the batch. It works in blocked layouts (nChw16c), so
 * channels-last activations are reordered in and out around it. Measured on the 2-core
 * reference machine (a layer's forward, and its backward with both gradients, the reorders
 * included, alternating with the direct NHWC kernels): ResNet50's 56x56, 28x28 and 14x14
 * layers at batch 8 (1,568, 392 and 128 tiles) ran 1.3-1.8x faster, its 7x7 layers at batch
 * 32 and 16 (128 and 64 tiles) 1.1-1.6x; at 32 tiles (7x7 at batch 8, 14x14 at batch 2) the
 * direct kernels won by 5-40 %, and at 49 (28x28 at batch 1) neither. MindSpore's CPU
 * convolutions ask oneDNN for convolution_auto, which allows Winograd. Not for the fused
 * eval epilogue (oneDNN's Winograd takes no binary post-ops) nor bfloat16. sp_wino_off (the
 * test hook of spore's own Winograd) turns it off for entries made afterwards. */
enum { WINO_TILES = 64 };
static int wino_wanted(const conv_geom *c, int flags) {
    if (sp_wino_off || (flags & (EPI_BN | EPI_RES | EPI_RELU | BF16))) return 0;
    if (c->kh != 3 || c->kw != 3 || c->sh != 1 || c->sw != 1 || c->dh != 1 || c->dw != 1 || c->g != 1) return 0;
    if (c->C < 16 || c->Co < 16) return 0;
    return c->N * ((c->Ho + 3) / 4) * ((c->Wo + 3) / 4) >= WINO_TILES;
}

/* A 1x1, stride-1, unpadded, ungrouped float32 layer on channels-last operands is a GEMM on
 * its [N·H·W, C] rows, in place: grad_x = grad_out·w (overwritten) and grad_w += grad_outᵀ·x
 * straight into the OIHW gradient, and the forward y = x·wᵀ where the layer widens (Co >= 4C).
 * oneDNN's own sgemm runs them, with no weight reorder in and no reorder-with-sum of the
 * weight gradient out. Measured per layer inside ResNet50 training steps (alternating steps;
 * README, stop 24): the backward of the stride-1 1x1 layers 348 -> 296 ms a step at batch 8,
 * 163 -> 135 at batch 2, 89 -> 72 at batch 1, every layer faster; the forward faster only
 * for the widening layers (the narrowing ones lose up to 40 % at batch 1 and stay on the
 * convolution primitive). Not for the fused eval epilogue, bias, or bfloat16.
 * sp_gemm1x1_off (a hidden test hook) turns it off; sp_dnnl_gemm_runs counts the GEMMs. */
static int gemm1x1(const conv_geom *c) {
    if (sp_gemm1x1_off || c->kh != 1 || c->kw != 1 || c->sh != 1 || c->sw != 1 || c->g != 1) return 0;
    return !c->pt && !c->pb_ && !c->pl && !c->pr_;
}
/* the eval GEMM (gemm_eval below) where it was measured faster inside ResNet50 forwards
 * (alternating, per layer): layers ending in a residual (batch 8: 32.9 -> 18.2 ms on the
 * 64->256 56x56 ones) and widening ones; narrowing ones lost 3-9 % and stay on the primitive */
static int gemm_eval_wanted(const conv_geom *c, int residual) { return residual || c->Co >= 4 * c->C; }
static int sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                 int64_t ldb, float beta, float *cm, int64_t ldc) {
    __atomic_add_fetch(&sp_dnnl_gemm_runs, 1, __ATOMIC_RELAXED);
    return dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, cm, ldc) == dnnl_success;
}

static int fwd_desc(dnnl_convolution_desc_t *cd, const conv_geom *c, int bias, dnnl_prop_kind_t prop, int bf16,
                    int cl, int wino, int dst_bf16) {
    dnnl_memory_desc_t s, w, d, b;
    plain_mds(c, &s, &w, &d, &b, dnnl_format_tag_any);
    if (cl && !wino) { /* activations in NHWC, the weights in the primitive's own layout (Winograd: all
                        * operands in its own, blocked, layouts) */
        dnnl_dims_t sd = {c->N, c->C, c->H, c->W}, dd = {c->N, c->Co, c->Ho, c->Wo};
        dnnl_memory_desc_init_by_tag(&s, 4, sd, dnnl_f32, dnnl_nhwc);
        dnnl_memory_desc_init_by_tag(&d, 4, dd, dnnl_f32, dnnl_nhwc);
    }
    if (bf16) { /* operands rounded to bfloat16 (nearest even) by the reorders; sums in float32 */
        s.data_type = dnnl_bf16;
        w.data_type = dnnl_bf16;
        if (dst_bf16) d.data_type = dnnl_bf16; /* OUT_BF16: rounded once, after the post-ops */
    }
    dnnl_dims_t st = {c->sh, c->sw}, dil = {c->dh - 1, c->dw - 1}, pl = {c->pt, c->pl}, pr = {c->pb_, c->pr_};
    return DN(dnnl_dilated_convolution_forward_desc_init(cd, prop,
                                                         wino ? dnnl_convolution_winograd : dnnl_convolution_direct,
                                                         &s, &w, bias ? &b : NULL, &d, st, dil, pl, pr));
}

/* make the entry for (kind, geometry, flags), with Winograd when wino; NULL only when out of
 * memory */
static dn_entry *entry_make1(const int64_t *key, int kind, const conv_geom *c, int flags, int wino, int resbin) {
    dn_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    memcpy(e->key, key, sizeof e->key);
    dnnl_memory_desc_t ps, pw, pdst, pb, pres, pgx;
    user_mds(c, flags, &ps, &pw, &pdst, &pb, &pres);
    if (kind != DN_FWD) user_bwd_mds(c, flags, &ps, &pw, &pdst, &pb, &pgx);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL, hint = NULL;
    int ok = DN(dnnl_primitive_attr_create(&attr)) &&
             DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_convolution_desc_t cd;
    if (ok && kind == DN_FWD) {
        if (flags & (EPI_BN | EPI_RES | EPI_RELU)) {
            ok = DN(dnnl_post_ops_create(&po));
            dnnl_memory_desc_t chan;
            dnnl_dims_t cdims = {1, c->Co, 1, 1};
            dnnl_memory_desc_init_by_tag(&chan, 4, cdims, dnnl_f32, dnnl_nchw);
            if (ok && (flags & EPI_BN))
                ok = DN(dnnl_post_ops_append_binary(po, dnnl_binary_mul, &chan)) &&
                     DN(dnnl_post_ops_append_binary(po, dnnl_binary_add, &chan));
            if (ok && (flags & EPI_RES))
                ok = resbin ? DN(dnnl_post_ops_append_binary(po, dnnl_binary_add, &pres))
                            : DN(dnnl_post_ops_append_sum(po, 1.0f));
            if (ok && (flags & EPI_RELU)) ok = DN(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
            if (ok) ok = DN(dnnl_primitive_attr_set_post_ops(attr, po));
        }
        /* a plain forward is a training one as far as we know (eval runs the fused epilogue):
         * forward_training, as PyTorch asks for; measured on a ResNet50 training step at batch
         * 8 (DNNL_VERBOSE, 3 alternating rounds), the backward primitives after it ran 7-12 %
         * faster than after forward_inference ones */
        dnnl_prop_kind_t prop = (flags & (EPI_BN | EPI_RES | EPI_RELU)) ? dnnl_forward_inference : dnnl_forward_training;
        ok = ok && fwd_desc(&cd, c, flags & HAS_BIAS, prop, flags & BF16,
                            flags & (CL_X | CL_OUT), wino, flags & OUT_BF16) &&
             DN(dnnl_primitive_desc_create(&pd, &cd, attr, g_eng, NULL));
    } else if (ok) {
        dnnl_convolution_desc_t fd;
        dnnl_memory_desc_t s, w, d, b;
        plain_mds(c, &s, &w, &d, &b, dnnl_format_tag_any);
        int cl = flags & (CL_X | CL_OUT | CL_GX);
        if (cl && !wino) { /* channels-last operands: NHWC primitives (brgconv/jit run them in place) */
            dnnl_dims_t sd = {c->N, c->C, c->H, c->W}, dd = {c->N, c->Co, c->Ho, c->Wo};
            dnnl_memory_desc_init_by_tag(&s, 4, sd, dnnl_f32, dnnl_nhwc);
            dnnl_memory_desc_init_by_tag(&d, 4, dd, dnnl_f32, dnnl_nhwc);
        }
        dnnl_dims_t st = {c->sh, c->sw}, dil = {c->dh - 1, c->dw - 1}, pl = {c->pt, c->pl}, pr = {c->pb_, c->pr_};
        dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
        ok = fwd_desc(&fd, c, flags & HAS_BIAS, dnnl_forward_training, 0, cl, wino, 0) &&
             DN(dnnl_primitive_desc_create(&hint, &fd, NULL, g_eng, NULL));
        if (ok && kind == DN_BWD_DATA)
            ok = DN(dnnl_dilated_convolution_backward_data_desc_init(&cd, alg, &s, &w, &d, st, dil, pl, pr));
        else if (ok)
            ok = DN(dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &s, &w,
                                                                        (flags & HAS_BIAS) ? &b : NULL, &d, st, dil,
                                                                        pl, pr));
        ok = ok && DN(dnnl_primitive_desc_create(&pd, &cd, attr, g_eng, hint));
    }
    if (ok) {
        /* the operands this kind reads (a, b) and writes (out), in the primitive's layouts */
        dnnl_query_t qa, qb, qo;
        const dnnl_memory_desc_t *pa, *pb_, *po_;
        if (kind == DN_FWD) { qa = dnnl_query_src_md; qb = dnnl_query_weights_md; qo = dnnl_query_dst_md; pa = &ps; pb_ = &pw; po_ = &pdst; }
        else if (kind == DN_BWD_DATA) { qa = dnnl_query_diff_dst_md; qb = dnnl_query_weights_md; qo = dnnl_query_diff_src_md; pa = &pdst; pb_ = &pw; po_ = &pgx; }
        else { qa = dnnl_query_src_md; qb = dnnl_query_diff_dst_md; qo = dnnl_query_diff_weights_md; pa = &ps; pb_ = &pdst; po_ = &pw; }
        e->md_a = *dnnl_primitive_desc_query_md(pd, qa, 0);
        e->md_b = *dnnl_primitive_desc_query_md(pd, qb, 0);
        e->md_out = *dnnl_primitive_desc_query_md(pd, qo, 0);
        /* the residual read in place only in the primitive's own dst layout, and only by the
         * direct JIT kernels (brgconv*, jit*): oneDNN 2.6's im2col GEMM convolution (gemm:jit,
         * plain NCHW) accepts a full-tensor binary operand and adds it wrongly (cl_conv caught
         * it); elsewhere the residual goes through the post-op sum */
        const char *impl = NULL;
        if (resbin && (!dnnl_memory_desc_equal(&pres, &e->md_out) ||
                       dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
                       (strncmp(impl, "brg", 3) && strncmp(impl, "jit", 3))))
            ok = 0;
        e->sz_a = dnnl_memory_desc_get_size(&e->md_a);
        e->sz_b = dnnl_memory_desc_get_size(&e->md_b);
        e->sz_out = dnnl_memory_desc_get_size(&e->md_out);
        const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        e->scratch = sp ? dnnl_memory_desc_get_size(sp) : 0;
        ok = ok && DN(dnnl_primitive_create(&e->prim, pd));
        if (ok) e->r_a = mk_reorder(pa, &e->md_a, 0, &ok);
        if (ok && e->r_a && kind == DN_FWD && (flags & BF16) && (flags & CL_X) && !(flags & X_BF16) &&
            sp_cpu_bf16_native()) {
            dnnl_memory_desc_t nh;
            dnnl_dims_t sd = {c->N, c->C, c->H, c->W};
            dnnl_memory_desc_init_by_tag(&nh, 4, sd, dnnl_bf16, dnnl_nhwc);
            e->cvt_a = dnnl_memory_desc_equal(&nh, &e->md_a) &&
                       e->sz_a == 2 * (size_t)(c->N * c->C * c->H * c->W);
        }
        if (ok) e->r_b = mk_reorder(pb_, &e->md_b, 0, &ok);
        /* weight gradients accumulate: always through a summing reorder */
        if (ok) e->r_out = mk_reorder(&e->md_out, po_, kind == DN_BWD_W, &ok);
        if (ok && kind == DN_FWD && (flags & EPI_RES) && !resbin) e->r_res = mk_reorder(&pres, &e->md_out, 0, &ok);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        dnnl_primitive_t ps_[] = {e->prim, e->r_a, e->r_b, e->r_out, e->r_res};
        for (size_t i = 0; i < sizeof ps_ / sizeof *ps_; i++)
            if (ps_[i]) dnnl_primitive_destroy(ps_[i]);
        memset(e, 0, sizeof *e);
        memcpy(e->key, key, sizeof e->key);
    }
    e->ok = ok;
    e->wino = ok && wino;
    e->res_bin = ok && resbin;
    return e;
}

/* Winograd where wanted and oneDNN has it (AVX-512 only in oneDNN 2.6), else direct; the
 * choice is part of the key (key[DN_KEY - 1]) */
static dn_entry *entry_make(const int64_t *key, int kind, const conv_geom *c, int flags) {
    if (key[DN_KEY - 1]) {
        dn_entry *e = entry_make1(key, kind, c, flags, 1, 0);
        if (!e || e->ok) return e;
        entry_free(e);
    }
    if (kind == DN_FWD && (flags & EPI_RES) && !(flags & RES_SUM)) {
        dn_entry *e = entry_make1(key, kind, c, flags, 0, 1);
        if (!e || e->ok) return e;
        entry_free(e);
    }
    return entry_make1(key, kind, c, flags, 0, 0);
}

/* the cached entry (made on first use); *tmp: an uncached one the caller frees (table full) */
static dn_entry *entry_get(int kind, const conv_geom *c, int flags, dn_entry **tmp) {
    int64_t key[DN_KEY] = {kind, flags, c->N, c->C, c->H, c->W, c->Co, c->kh, c->kw, c->sh, c->sw,
                           c->pt, c->pb_, c->pl, c->pr_, c->dh, c->dw, c->g, wino_wanted(c, flags)};
    *tmp = NULL;
    pthread_mutex_lock(&g_mu);
    dn_entry *e = cache_find(key);
    pthread_mutex_unlock(&g_mu);
    if (e) return e;
    e = entry_make(key, kind, c, flags); /* JIT outside the lock */
    if (!e) return NULL;
    pthread_mutex_lock(&g_mu);
    dn_entry *other = cache_find(key);
    if (other) { entry_free(e); e = other; }
    else if (g_ncache < DN_CACHE) g_cache[g_ncache++] = e;
    else *tmp = e;
    pthread_mutex_unlock(&g_mu);
    return e;
}

/* a memory object over p in md (NULL when oneDNN refuses) */
static dnnl_memory_t mem_of(const dnnl_memory_desc_t *md, void *p) {
    dnnl_memory_t m = NULL;
    if (!DN(dnnl_memory_create(&m, md, g_eng, p))) return NULL;
    return m;
}

#define MAXM 24
typedef struct { dnnl_memory_t m[MAXM]; int n; int bad; } mem_set;
static dnnl_memory_t ms_add(mem_set *s, const dnnl_memory_desc_t *md, const void *p) {
    dnnl_memory_t m = mem_of(md, (void *)p);
    if (!m || s->n == MAXM) { if (m) dnnl_memory_destroy(m); s->bad = 1; return NULL; }
    return s->m[s->n++] = m;
}
static void ms_free(mem_set *s) { for (int i = 0; i < s->n; i++) dnnl_memory_destroy(s->m[i]); }

static int exec(dnnl_primitive_t p, dnnl_stream_t st, int n, const dnnl_exec_arg_t *args) {
    return DN(dnnl_primitive_execute(p, st, n, args));
}
static int run_reorder(dnnl_primitive_t r, dnnl_stream_t st, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return exec(r, st, 2, a);
}

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }


/* ---- weights kept in the forward primitives' layouts -----------------------------------
 * Reordering the weights into oneDNN's blocked layout costs on every call what the
 * convolution saves at small batches (ResNet50 at batch 1: about 10 ms of a 45 ms forward).
 * A weight whose bytes are unchanged since the last call is kept in that layout instead:
 * - the storage's dirty flag (core/internal.h) is set by every engine path that can write
 *   it; a cache miss clears it and bumps the storage's epoch, and an entry is valid while
 *   the flag stays clear and the epoch is the one it recorded;
 * - a weight is kept only at its second clean sighting, so training (written every step)
 *   never keeps one and allocates nothing;
 * - never for adopted memory or storages whose address went to host code (sp_tensor_data);
 * - buffers are refcounted: a call using one keeps it alive through eviction or a drop;
 * - at most WC_BUDGET bytes, least recently used out first; entries die with their storage. */
enum { WC_BUDGET_MB = 1024 };
typedef struct { atomic_int refs; size_t size; } wc_buf; /* the packed bytes follow, 64-aligned */
#define WC_DATA(b) ((char *)(b) + 64)
typedef struct {
    uint64_t sid;                 /* the storage's id */
    int64_t off;                  /* the weight's byte offset in it */
    dnnl_memory_desc_t md;        /* the layout (and data type) kept */
    uint64_t epoch;               /* the storage's epoch when last seen clean */
    wc_buf *buf;                  /* NULL: seen once, not kept yet */
    uint64_t used;
} wc_entry;
static wc_entry *g_wc;
static int g_nwc, g_capwc;
static size_t g_wc_bytes;
static uint64_t g_wc_tick, g_wc_hits;
static pthread_mutex_t g_wmu = PTHREAD_MUTEX_INITIALIZER;

static void wc_unref(wc_buf *b) {
    if (b && atomic_fetch_sub(&b->refs, 1) == 1) free(b);
}
/* kept bytes count as the CPU's engine memory (sp_mem_stats), as tensors do */
static void wc_release_entry(wc_entry *e) { /* under g_wmu */
    if (e->buf) {
        g_wc_bytes -= e->buf->size;
        sp_mem_account(sp_device_cpu(), -(long long)e->buf->size);
        wc_unref(e->buf);
        e->buf = NULL;
    }
}
static wc_entry *wc_find(uint64_t sid, int64_t off, const dnnl_memory_desc_t *md) { /* under g_wmu */
    for (int i = 0; i < g_nwc; i++)
        if (g_wc[i].sid == sid && g_wc[i].off == off && dnnl_memory_desc_equal(&g_wc[i].md, md)) return &g_wc[i];
    return NULL;
}
void sp_cpu_wcache_drop(sp_storage *st) {
    pthread_mutex_lock(&g_wmu);
    for (int i = 0; i < g_nwc;)
        if (g_wc[i].sid == st->id) { wc_release_entry(&g_wc[i]); g_wc[i] = g_wc[--g_nwc]; }
        else i++;
    st->cached = 0;
    pthread_mutex_unlock(&g_wmu);
}
/* A buffer holding w in md (a reference the caller drops with wc_unref), or NULL: then
 * *keep is a new buffer the caller reorders w into and passes to wc_ready with *epoch (kept
 * from then on), or NULL for the workspace path. */
static wc_buf *wc_get(const sp_tensor *w, const dnnl_memory_desc_t *md, size_t size, wc_buf **keep,
                      uint64_t *epoch) {
    *keep = NULL;
    sp_storage *st = w->st;
    if (!st->owned || !SP_DEV(w)->host_visible || atomic_load_explicit(&st->exposed, memory_order_relaxed)) return NULL;
    int64_t off = w->offset * (int64_t)sp_dtype_size(w->dtype);
    pthread_mutex_lock(&g_wmu);
    wc_entry *e = wc_find(st->id, off, md);
    int clean = !atomic_load_explicit(&st->dirty, memory_order_acquire);
    wc_buf *hit = NULL;
    if (e && clean && e->epoch == st->epoch) {
        e->used = ++g_wc_tick;
        if (e->buf) { hit = e->buf; atomic_fetch_add(&hit->refs, 1); g_wc_hits++; }
        else if (size <= (size_t)WC_BUDGET_MB << 20) { /* the second clean sighting: keep it */
            while (g_wc_bytes + size > (size_t)WC_BUDGET_MB << 20) { /* least recently used out */
                wc_entry *lru = NULL;
                for (int i = 0; i < g_nwc; i++)
                    if (g_wc[i].buf && (!lru || g_wc[i].used < lru->used)) lru = &g_wc[i];
                if (!lru) break;
                wc_release_entry(lru);
            }
            wc_buf *b = aligned_alloc(64, 64 + ((size + 63) & ~(size_t)63));
            if (b) { atomic_init(&b->refs, 1); b->size = size; *keep = b; }
        }
    } else {
        if (!clean) { /* written since: the bytes as they are now define the next epoch */
            atomic_store_explicit(&st->dirty, 0, memory_order_relaxed);
            st->epoch++;
        }
        if (!e && g_nwc == g_capwc) {
            int cap = g_capwc ? 2 * g_capwc : 64;
            wc_entry *n = realloc(g_wc, sizeof *n * (size_t)cap);
            if (n) g_wc = n, g_capwc = cap;
        }
        if (!e && g_nwc < g_capwc) {
            e = &g_wc[g_nwc++];
            memset(e, 0, sizeof *e);
            e->sid = st->id, e->off = off, e->md = *md;
            st->cached = 1;
        }
        if (e) { wc_release_entry(e); e->epoch = st->epoch; e->used = ++g_wc_tick; }
    }
    *epoch = st->epoch;
    pthread_mutex_unlock(&g_wmu);
    return hit;
}
void sp_cpu_wcache_stats(uint64_t *hits, size_t *bytes) {
    pthread_mutex_lock(&g_wmu);
    *hits = g_wc_hits, *bytes = g_wc_bytes;
    pthread_mutex_unlock(&g_wmu);
}
/* b (from wc_get's *keep) now holds w: keep it if w was not written meanwhile */
static void wc_ready(const sp_tensor *w, const dnnl_memory_desc_t *md, wc_buf *b, uint64_t epoch) {
    sp_storage *st = w->st;
    int64_t off = w->offset * (int64_t)sp_dtype_size(w->dtype);
    pthread_mutex_lock(&g_wmu);
    wc_entry *e = wc_find(st->id, off, md);
    if (e && !e->buf && e->epoch == epoch && st->epoch == epoch &&
        !atomic_load_explicit(&st->dirty, memory_order_acquire)) {
        e->buf = b;
        g_wc_bytes += b->size;
        sp_mem_account(sp_device_cpu(), (long long)b->size);
        b = NULL;
    }
    pthread_mutex_unlock(&g_wmu);
    wc_unref(b);
}

/* The eval-mode conv -> BN [-> + residual] [-> ReLU] of a 1x1 GEMM layer (gemm1x1): one
 * sgemm, then the epilogue (BatchNorm's sp_cpu_nhwc_apply, norm.c; on libgomp's threads
 * above GEMM_ROWS rows), reading the residual where it is (the convolution primitive's sum
 * post-op needs it copied into its destination first). The weights are kept transposed
 * ([C][Co], in the kept-weights cache above: a product with no transposed operand); until
 * they are kept, the GEMM reads w as it is. For layers with a residual or widening ones
 * (gemm_eval_wanted). */
enum { GEMM_ROWS = 128 };
static int gemm_eval(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const float *A, const float *B,
                     const sp_tensor *residual, int relu, const conv_geom *c) {
    int64_t M = c->N * c->H * c->W, C = c->C, Co = c->Co;
    dnnl_memory_desc_t mt;
    dnnl_dims_t wd = {Co, C, 1, 1};
    if (!DN(dnnl_memory_desc_init_by_tag(&mt, 4, wd, dnnl_f32, dnnl_bacd))) return 0;
    size_t wsz = sizeof(float) * (size_t)(C * Co);
    wc_buf *keep = NULL;
    uint64_t ep = 0;
    wc_buf *kept = wc_get(w, &mt, wsz, &keep, &ep);
    const float *W = F32(w), *Wt = kept ? (const float *)WC_DATA(kept) : NULL;
    if (keep) { /* transposed in 32x32 tiles on libgomp's threads (the call that keeps it pays this) */
        float *t = (float *)WC_DATA(keep);
        int64_t to = (Co + 31) / 32, ti = (C + 31) / 32;
#pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < to * ti; k++) {
            int64_t o0 = k / ti * 32, i0 = k % ti * 32;
            int64_t o1 = o0 + 32 < Co ? o0 + 32 : Co, i1 = i0 + 32 < C ? i0 + 32 : C;
            for (int64_t i = i0; i < i1; i++)
                for (int64_t o = o0; o < o1; o++) t[i * Co + o] = W[o * C + i];
        }
        Wt = t;
    }
    const float *X = F32(x), *R = residual ? F32(residual) : NULL;
    float *Y = F32(out);
    int bad = dnnl_sgemm('N', Wt ? 'N' : 'T', M, Co, C, 1.0f, X, C, Wt ? Wt : W, Wt ? Co : C, 0.0f, Y, Co) !=
              dnnl_success;
    if (!bad) sp_cpu_nhwc_apply(Y, Y, R, M, Co, A, B, relu, M > GEMM_ROWS);
    __atomic_add_fetch(&sp_dnnl_gemm_runs, 1, __ATOMIC_RELAXED);
    wc_unref(kept);
    if (keep) {
        if (!bad) wc_ready(w, &mt, keep, ep);
        else wc_unref(keep);
    }
    return !bad;
}

/* 1: the layer ran here (status in *st); 0: oneDNN is off or declined, spore's kernels run it */
int sp_cpu_dnnl_conv_forward(sp_status *st, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                             const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta,
                             const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual,
                             int relu, int sh, int sw, int pt, int pb, int pl, int pr, int dh, int dw, int groups,
                             int bf16, const char *op) {
    int sel = sp_cpu_conv_kernel();
    if (sel == SP_CONV_SPORE) return 0;
    /* engine/ops lets x, out and residual be contiguous or channels-last (one that is both is
     * addressed alike either way); auto sends only calls with a channels-last one */
    int cl = (sp_tensor_is_contiguous(x) ? 0 : CL_X) | (sp_tensor_is_contiguous(out) ? 0 : CL_OUT) |
             (residual && !sp_tensor_is_contiguous(residual) ? CL_RES : 0);
    /* a bf16 activation is channels-last (engine/ops), also where that is the contiguous layout
     * too ([N,C,1,1]): its md is the NHWC one, in bf16 */
    int b16 = (x->dtype == SP_BFLOAT16 ? X_BF16 | CL_X : 0) | (out->dtype == SP_BFLOAT16 ? OUT_BF16 | CL_OUT : 0) |
              (residual && residual->dtype == SP_BFLOAT16 ? RES_BF16 | CL_RES : 0);
    cl |= b16 & (CL_X | CL_OUT | CL_RES);
    if (sel == SP_CONV_AUTO && (!cl || !dn_available())) return 0;
    conv_geom c;
    conv_geom_of(&c, x, w, sh, sw, pt, pb, pl, pr, dh, dw, groups);
    if (!bias && !gamma && !residual && !relu && !bf16 && gemm1x1(&c) && c.Co >= 4 * c.C &&
        sp_tensor_is_channels_last(x) && sp_tensor_is_channels_last(out) && sp_tensor_is_contiguous(w)) {
        int ok = sgemm('N', 'T', c.N * c.H * c.W, c.Co, c.C, F32(x), c.C, F32(w), c.C, 0.0f, F32(out), c.Co);
        *st = ok ? SP_OK : sp_error(SP_EINVAL, "%s: oneDNN's sgemm failed", op);
        return 1;
    }
    if (gamma && !bias && !bf16 && gemm1x1(&c) && gemm_eval_wanted(&c, residual != NULL) &&
        sp_tensor_is_channels_last(x) && sp_tensor_is_channels_last(out) &&
        (!residual || sp_tensor_is_channels_last(residual)) &&
        sp_tensor_is_contiguous(w) && F32(out) != F32(x) && (!residual || F32(residual) != F32(out))) {
        float ab[2 * 2048], *A = c.Co <= 2048 ? ab : malloc(2 * sizeof(float) * (size_t)c.Co);
        if (!A) { *st = sp_error(SP_ENOMEM, "%s: cannot allocate the BatchNorm fold", op); return 1; }
        const float *ga = F32(gamma), *be = F32(beta), *mu = F32(mean), *va = F32(var);
        for (int64_t o = 0; o < c.Co; o++) {
            double inv = 1.0 / sqrt((double)va[o] + eps);
            A[o] = (float)(ga[o] * inv);
            A[c.Co + o] = (float)(be[o] - mu[o] * inv * ga[o]);
        }
        int ok = gemm_eval(out, x, w, A, A + c.Co, residual, relu, &c);
        if (A != ab) free(A);
        *st = ok ? SP_OK : sp_error(SP_EINVAL, "%s: oneDNN's sgemm failed", op);
        return 1;
    }
    int flags = (bias ? HAS_BIAS : 0) | (gamma ? EPI_BN : 0) | (residual ? EPI_RES : 0) | (relu ? EPI_RELU : 0) |
                (bf16 ? BF16 : 0) | cl | b16;
    /* a residual overlapping out is summed in place (RES_SUM), else read in place */
    if (residual && sp_bytes_overlap(residual, out)) flags |= RES_SUM;
    dn_entry *tmp, *e = entry_get(DN_FWD, &c, flags, &tmp);
    if (!e) { *st = sp_error(SP_ENOMEM, "%s: cannot allocate oneDNN's primitive", op); return 1; }
    if (!e->ok) {
        if (tmp) entry_free(tmp);
        return 0;
    }
    sp_device *dev = SP_DEV(x);
    size_t nchan = gamma ? up64(sizeof(float) * (size_t)c.Co) : 0;
    /* the weights: kept in the primitive's layout (wc_get), or reordered into workspace */
    wc_buf *wkept = NULL, *wkeep = NULL;
    uint64_t wepoch = 0;
    if (e->r_b) {
        wkept = wc_get(w, &e->md_b, e->sz_b, &wkeep, &wepoch);
    }
    char *bx = e->r_a ? sp_workspace(dev, 0, e->sz_a) : NULL;
    char *bw = wkept ? WC_DATA(wkept) : wkeep ? WC_DATA(wkeep) : e->r_b ? sp_workspace(dev, 1, e->sz_b) : NULL;
    char *bo = e->r_out ? sp_workspace(dev, 2, e->sz_out) : NULL;
    char *bs = sp_workspace(dev, 3, up64(e->scratch) + 2 * nchan + 64);
    dnnl_stream_t s = dn_stream();
    if ((e->r_a && !bx) || (e->r_b && !bw) || (e->r_out && !bo) || !bs || !s) {
        if (tmp) entry_free(tmp);
        wc_unref(wkept), wc_unref(wkeep);
        *st = sp_error(SP_ENOMEM, "%s: cannot allocate oneDNN's buffers", op);
        return 1;
    }
    dnnl_memory_desc_t ps, pw, pdst, pb_, pres;
    user_mds(&c, flags, &ps, &pw, &pdst, &pb_, &pres);
    mem_set ms = {0};
    char *O = SP_DATA(out);
    dnnl_memory_t ux = ms_add(&ms, &ps, SP_DATA(x)), uw = ms_add(&ms, &pw, SP_DATA(w)), uo = ms_add(&ms, &pdst, O);
    dnnl_memory_t mx = e->r_a ? ms_add(&ms, &e->md_a, bx) : ux;
    dnnl_memory_t mw = e->r_b ? ms_add(&ms, &e->md_b, bw) : uw;
    dnnl_memory_t mo = e->r_out ? ms_add(&ms, &e->md_out, bo) : uo;
    dnnl_memory_t mb = bias ? ms_add(&ms, &pb_, SP_DATA(bias)) : NULL;
    int okx = !ms.bad;
    dnnl_exec_arg_t args[9];
    int na = 0;
    dnnl_memory_t mscr = NULL, ma = NULL, mbb = NULL;
    if (okx && e->scratch) {
        dnnl_memory_desc_t sd;
        dnnl_dims_t d1 = {(int64_t)e->scratch};
        dnnl_memory_desc_init_by_tag(&sd, 1, d1, dnnl_u8, dnnl_a);
        mscr = ms_add(&ms, &sd, bs);
    }
    if (okx && gamma) {
        float *A = (float *)(bs + up64(e->scratch)), *B = (float *)(bs + up64(e->scratch) + nchan);
        const float *ga = F32(gamma), *be = F32(beta), *mu = F32(mean), *va = F32(var);
        for (int64_t o = 0; o < c.Co; o++) {
            double inv = 1.0 / sqrt((double)va[o] + eps);
            A[o] = (float)(ga[o] * inv);
            B[o] = (float)(be[o] - mu[o] * inv * ga[o]);
        }
        dnnl_memory_desc_t chan;
        dnnl_dims_t cdims = {1, c.Co, 1, 1};
        dnnl_memory_desc_init_by_tag(&chan, 4, cdims, dnnl_f32, dnnl_nchw);
        ma = ms_add(&ms, &chan, A);
        mbb = ms_add(&ms, &chan, B);
    }
    okx = okx && !ms.bad;
    if (okx && e->cvt_a && !sp_cvt_bf16_off) cvt_bf16((uint16_t *)bx, (const float *)SP_DATA(x), sp_tensor_numel(x));
    else if (okx && e->r_a) okx = run_reorder(e->r_a, s, ux, mx);
    if (okx && e->r_b && !wkept) okx = run_reorder(e->r_b, s, uw, mw);
    dnnl_memory_t ures = NULL;
    if (okx && residual) {
        dnnl_memory_t ur = ures = ms_add(&ms, &pres, SP_DATA(residual));
        okx = !ms.bad;
        if (okx && e->res_bin) { /* read in place by the binary-add post-op */ }
        else if (okx && e->r_res) okx = run_reorder(e->r_res, s, ur, mo);
        else if (okx) { /* the residual already in the primitive's dst layout: copied into its dst */
            void *dst = e->r_out ? (void *)bo : (void *)O;
            if (dst != SP_DATA(residual)) memmove(dst, SP_DATA(residual), dnnl_memory_desc_get_size(&pres));
        }
    }
    if (okx) {
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mx};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mw};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mo};
        if (mb) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
        if (mscr) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mscr};
        if (ma) {
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, ma};
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1, mbb};
        }
        if (e->res_bin) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(ma ? 2 : 0) | DNNL_ARG_SRC_1, ures};
        okx = exec(e->prim, s, na, args);
        if (okx && e->wino) __atomic_add_fetch(&sp_dnnl_wino_runs, 1, __ATOMIC_RELAXED);
        if (okx && e->res_bin) __atomic_add_fetch(&sp_dnnl_resbin_runs, 1, __ATOMIC_RELAXED);
    }
    if (okx && e->r_out) okx = run_reorder(e->r_out, s, mo, uo);
    if (okx) okx = DN(dnnl_stream_wait(s));
    ms_free(&ms);
    if (tmp) entry_free(tmp);
    wc_unref(wkept);
    if (wkeep) {
        if (okx) wc_ready(w, &e->md_b, wkeep, wepoch);
        else wc_unref(wkeep);
    }
    *st = okx ? SP_OK : sp_error(SP_EINVAL, "%s: oneDNN failed to run the convolution", op);
    return 1;
}

/* grad_x = conv^T(grad_out) (overwritten); grad_w += ..., grad_b += sum (any may be NULL).
 * 1: ran here; 0: spore's kernels run it */
int sp_cpu_dnnl_conv_backward(sp_status *st, sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                              const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, int sh, int sw,
                              int pt, int pb, int pl, int pr, int dh, int dw, int groups, const char *op) {
    int sel = sp_cpu_conv_kernel();
    if (sel == SP_CONV_SPORE) return 0;
    /* engine/ops lets x, grad_out and grad_x be channels-last; auto sends only such calls */
    int cl = (sp_tensor_is_contiguous(x) ? 0 : CL_X) | (sp_tensor_is_contiguous(grad_out) ? 0 : CL_OUT) |
             (grad_x && !sp_tensor_is_contiguous(grad_x) ? CL_GX : 0);
    if (sel == SP_CONV_AUTO && (!cl || !dn_available())) return 0;
    conv_geom c;
    conv_geom_of(&c, x, w, sh, sw, pt, pb, pl, pr, dh, dw, groups);
    if (!grad_b && gemm1x1(&c) && sp_tensor_is_channels_last(x) && sp_tensor_is_channels_last(grad_out) &&
        (!grad_x || sp_tensor_is_channels_last(grad_x)) && sp_tensor_is_contiguous(w) &&
        (!grad_w || sp_tensor_is_contiguous(grad_w))) {
        int64_t m = c.N * c.H * c.W;
        int ok = 1;
        if (grad_w) ok = sgemm('T', 'N', c.Co, c.C, m, F32(grad_out), c.Co, F32(x), c.C, 1.0f, F32(grad_w), c.C);
        if (ok && grad_x) ok = sgemm('N', 'N', m, c.C, c.Co, F32(grad_out), c.Co, F32(w), c.C, 0.0f, F32(grad_x), c.C);
        *st = ok ? SP_OK : sp_error(SP_EINVAL, "%s: oneDNN's sgemm failed", op);
        return 1;
    }
    dn_entry *td = NULL, *tw = NULL, *ed = NULL, *ew = NULL;
    if (grad_x) {
        ed = entry_get(DN_BWD_DATA, &c, cl & (CL_OUT | CL_GX), &td);
        if (!ed) { *st = sp_error(SP_ENOMEM, "%s: cannot allocate oneDNN's primitive", op); return 1; }
    }
    if (grad_w || grad_b) {
        /* the bias gradient only when asked: oneDNN's 1x1 kernels otherwise reduce grad_out
         * for it in every call (ResNet's convolutions have no bias) */
        ew = entry_get(DN_BWD_W, &c, (grad_b ? HAS_BIAS : 0) | (cl & (CL_X | CL_OUT)), &tw);
        if (!ew) {
            if (td) entry_free(td);
            *st = sp_error(SP_ENOMEM, "%s: cannot allocate oneDNN's primitive", op);
            return 1;
        }
    }
    if ((ed && !ed->ok) || (ew && !ew->ok)) {
        if (td) entry_free(td);
        if (tw) entry_free(tw);
        return 0;
    }
    sp_device *dev = SP_DEV(x);
    dnnl_memory_desc_t ps, pw, pdst, pb_, pgx;
    user_bwd_mds(&c, cl, &ps, &pw, &pdst, &pb_, &pgx);
    dnnl_stream_t s = dn_stream();
    mem_set ms = {0};
    int okx = s != NULL, oom = 0;
    dnnl_memory_t ugo = ms_add(&ms, &pdst, SP_DATA(grad_out));
    dnnl_memory_t mgo_w = NULL; /* grad_out in the weight-gradient primitive's layout (slot 1) */
    if (okx && ew) {
        size_t nb = up64(sizeof(float) * (size_t)c.Co);
        char *bx = ew->r_a ? sp_workspace(dev, 0, ew->sz_a) : NULL;
        char *bg = ew->r_b ? sp_workspace(dev, 1, ew->sz_b) : NULL;
        char *bo = sp_workspace(dev, 2, up64(ew->sz_out) + nb);
        char *bs = ew->scratch ? sp_workspace(dev, 3, ew->scratch) : NULL;
        if ((ew->r_a && !bx) || (ew->r_b && !bg) || !bo || (ew->scratch && !bs)) oom = 1, okx = 0;
        dnnl_memory_t ux = okx ? ms_add(&ms, &ps, SP_DATA(x)) : NULL;
        dnnl_memory_t mx = okx && ew->r_a ? ms_add(&ms, &ew->md_a, bx) : ux;
        mgo_w = okx && ew->r_b ? ms_add(&ms, &ew->md_b, bg) : ugo;
        dnnl_memory_t mdw = okx ? ms_add(&ms, &ew->md_out, bo) : NULL;
        float *dbias = (float *)(bo + up64(ew->sz_out));
        dnnl_memory_t mdb = okx && grad_b ? ms_add(&ms, &pb_, dbias) : NULL;
        dnnl_memory_t mscr = NULL;
        if (okx && ew->scratch) {
            dnnl_memory_desc_t sd;
            dnnl_dims_t d1 = {(int64_t)ew->scratch};
            dnnl_memory_desc_init_by_tag(&sd, 1, d1, dnnl_u8, dnnl_a);
            mscr = ms_add(&ms, &sd, bs);
        }
        okx = okx && !ms.bad;
        if (okx && ew->r_a) okx = run_reorder(ew->r_a, s, ux, mx);
        if (okx && ew->r_b) okx = run_reorder(ew->r_b, s, ugo, mgo_w);
        if (okx) {
            dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DIFF_DST, mgo_w}, {DNNL_ARG_DIFF_WEIGHTS, mdw}};
            int na = 3;
            if (mdb) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, mdb};
            if (mscr) a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mscr};
            okx = exec(ew->prim, s, na, a);
            if (okx && ew->wino) __atomic_add_fetch(&sp_dnnl_wino_runs, 1, __ATOMIC_RELAXED);
        }
        if (okx && grad_w) {
            dnnl_memory_t ugw = ms_add(&ms, &pw, SP_DATA(grad_w));
            okx = !ms.bad && run_reorder(ew->r_out, s, mdw, ugw);
        }
        if (okx) okx = DN(dnnl_stream_wait(s));
        if (okx && grad_b) {
            float *gb = F32(grad_b);
            for (int64_t o = 0; o < c.Co; o++) gb[o] += dbias[o];
        }
    }
    if (okx && ed) {
        /* grad_out already in this layout (slot 1) from the weight gradient: no second reorder */
        int reuse = ew && ew->r_b && dnnl_memory_desc_equal(&ew->md_b, &ed->md_a);
        char *bg = ed->r_a && !reuse ? sp_workspace(dev, 0, ed->sz_a) : NULL;
        char *bw = ed->r_b ? sp_workspace(dev, 2, ed->sz_b) : NULL;
        char *bo = ed->r_out ? sp_workspace(dev, 3, ed->sz_out + (ed->scratch ? up64(ed->scratch) + 64 : 0)) : NULL;
        char *bs = ed->scratch ? (bo ? bo + up64(ed->sz_out) : sp_workspace(dev, 3, ed->scratch)) : NULL;
        if ((ed->r_a && !reuse && !bg) || (ed->r_b && !bw) || (ed->r_out && !bo) || (ed->scratch && !bs))
            oom = 1, okx = 0;
        dnnl_memory_t mgo = NULL, mw = NULL, mgx = NULL, ugx = NULL, uw = NULL, mscr = NULL;
        if (okx) {
            mgo = reuse ? mgo_w : ed->r_a ? ms_add(&ms, &ed->md_a, bg) : ugo;
            uw = ms_add(&ms, &pw, SP_DATA(w));
            mw = ed->r_b ? ms_add(&ms, &ed->md_b, bw) : uw;
            ugx = ms_add(&ms, &pgx, SP_DATA(grad_x));
            mgx = ed->r_out ? ms_add(&ms, &ed->md_out, bo) : ugx;
            if (ed->scratch) {
                dnnl_memory_desc_t sd;
                dnnl_dims_t d1 = {(int64_t)ed->scratch};
                dnnl_memory_desc_init_by_tag(&sd, 1, d1, dnnl_u8, dnnl_a);
                mscr = ms_add(&ms, &sd, bs);
            }
            okx = !ms.bad;
        }
        if (okx && !reuse && ed->r_a) okx = run_reorder(ed->r_a, s, ugo, mgo);
        if (okx && ed->r_b) okx = run_reorder(ed->r_b, s, uw, mw);
        if (okx) {
            dnnl_exec_arg_t a[4] = {{DNNL_ARG_DIFF_DST, mgo}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DIFF_SRC, mgx},
                                    {DNNL_ARG_SCRATCHPAD, mscr}};
            okx = exec(ed->prim, s, mscr ? 4 : 3, a);
            if (okx && ed->wino) __atomic_add_fetch(&sp_dnnl_wino_runs, 1, __ATOMIC_RELAXED);
        }
        if (okx && ed->r_out) okx = run_reorder(ed->r_out, s, mgx, ugx);
        if (okx) okx = DN(dnnl_stream_wait(s));
    }
    ms_free(&ms);
    if (td) entry_free(td);
    if (tw) entry_free(tw);
    *st = okx ? SP_OK
              : oom ? sp_error(SP_ENOMEM, "%s: cannot allocate oneDNN's buffers", op)
                    : sp_error(SP_EINVAL, "%s: oneDNN failed to run the convolution's backward", op);
    return 1;
}

int sp_cpu_conv_kernel_available(int k) {
    if (k == SP_CONV_SPORE || k == SP_CONV_AUTO) return 1;
    if (k == SP_CONV_ONEDNN) return dn_available();
    return 0;
}
#else
int sp_cpu_dnnl_conv_forward(sp_status *st, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                             const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta,
                             const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual,
                             int relu, int sh, int sw, int pt, int pb, int pl, int pr, int dh, int dw, int groups,
                             int bf16, const char *op) {
    (void)st; (void)bf16; (void)out; (void)x; (void)w; (void)bias; (void)gamma; (void)beta; (void)mean; (void)var; (void)eps;
    (void)residual; (void)relu; (void)sh; (void)sw; (void)pt; (void)pb; (void)pl; (void)pr; (void)dh; (void)dw;
    (void)groups; (void)op;
    return 0;
}
int sp_cpu_dnnl_conv_backward(sp_status *st, sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                              const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, int sh, int sw,
                              int pt, int pb, int pl, int pr, int dh, int dw, int groups, const char *op) {
    (void)st; (void)grad_x; (void)grad_w; (void)grad_b; (void)grad_out; (void)x; (void)w; (void)sh; (void)sw;
    (void)pt; (void)pb; (void)pl; (void)pr; (void)dh; (void)dw; (void)groups; (void)op;
    return 0;
}
int sp_cpu_conv_kernel_available(int k) { return k == SP_CONV_SPORE || k == SP_CONV_AUTO; }
void sp_cpu_wcache_drop(sp_storage *st) { st->cached = 0; } /* nothing is kept without oneDNN */
void sp_cpu_wcache_stats(uint64_t *hits, size_t *bytes) { *hits = 0, *bytes = 0; }
#endif

static const char *const CONV_KERNEL_NAMES[3] = {"spore", "onednn", "auto"};

int sp_cpu_conv_kernel(void) { return __atomic_load_n(&conv_kernel_sel, __ATOMIC_ACQUIRE); }

sp_status sp_cpu_conv_set_kernel(int k) {
    if (k != SP_CONV_SPORE && k != SP_CONV_ONEDNN && k != SP_CONV_AUTO)
        return sp_error(SP_EINVAL, "conv kernel: %d is none of 0 (spore), 1 (onednn), 2 (auto)", k);
    if (!sp_cpu_conv_kernel_available(k))
        return sp_error(SP_EINVAL, "conv kernel '%s' is not available (%s)", CONV_KERNEL_NAMES[k],
#ifdef SP_HAVE_DNNL
                        "oneDNN did not start on this CPU"
#else
                        "libspore was built without oneDNN: make DNNL=1 needs Debian's libdnnl-dev"
#endif
        );
    __atomic_store_n(&conv_kernel_sel, k, __ATOMIC_RELEASE);
    return SP_OK;
}
