/* norm.c — CPU kernels (checked by engine/ops/nn_ops.c): BatchNorm2d forward/backward over NCHW float32 (MindSpore's momentum
 * convention: moving = momentum*moving + (1-momentum)*batch, unbiased variance). */
#include "nn_common.h"

#include <math.h>

/* Row reductions in 16 float lanes (vectorised; GCC keeps a scalar double chain otherwise,
 * perf: BatchNorm ~8% of a ResNet50 training step), lanes summed in double per row and rows
 * summed in double: a row is at most one feature map (ResNet: 12544 floats), so each lane
 * adds under 800 terms in float. */
#define LANES 16
static inline double row_sum(const float *p, int64_t n) {
    float a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) a[j] += p[i + j];
    double s = 0;
    for (int j = 0; j < LANES; j++) s += a[j];
    for (; i < n; i++) s += p[i];
    return s;
}
static inline double row_sqdev(const float *p, int64_t n, float m) {
    float a[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) { float d = p[i + j] - m; a[j] += d * d; }
    double s = 0;
    for (int j = 0; j < LANES; j++) s += a[j];
    for (; i < n; i++) { double d = p[i] - m; s += d * d; }
    return s;
}
/* sum g and sum g*(p - m) */
static inline void row_gdot(const float *g, const float *p, int64_t n, float m, double *sg, double *sgx) {
    float a[LANES] = {0}, b[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) { a[j] += g[i + j]; b[j] += g[i + j] * (p[i + j] - m); }
    double s = 0, t = 0;
    for (int j = 0; j < LANES; j++) { s += a[j]; t += b[j]; }
    for (; i < n; i++) { s += g[i]; t += g[i] * ((double)p[i] - m); }
    *sg += s;
    *sgx += t;
}

/* out = a[c] * x + b[c] [+ residual] [then max(., 0)] over one channel's run */
static inline void bn_apply(float *o, const float *p, const float *r, int64_t HW, float a, float b, int relu) {
    if (r && relu)
        for (int64_t i = 0; i < HW; i++) { float v = p[i] * a + b + r[i]; o[i] = v > 0.0f ? v : 0.0f; }
    else if (r)
        for (int64_t i = 0; i < HW; i++) o[i] = p[i] * a + b + r[i];
    else if (relu)
        for (int64_t i = 0; i < HW; i++) { float v = p[i] * a + b; o[i] = v > 0.0f ? v : 0.0f; }
    else
        for (int64_t i = 0; i < HW; i++) o[i] = p[i] * a + b;
}

/* One channel's statistics: training, the mean of M values from their sum s and the variance
 * from q, their squared deviations about the float-rounded mean mf (the variance about any
 * centre m is q/M - (mean - m)^2), updating the moving statistics *mm, *mv (MindSpore's
 * momentum, unbiased variance) when update is set; eval, the moving statistics. *inv is
 * 1/sqrt(var + eps). */
static inline void bn_channel_stats(int training, int update, int64_t M, double s, double q, float mf, float *mm,
                                    float *mv, double momentum, double eps, double *mean, double *inv) {
    double var;
    if (training) {
        *mean = M > 0 ? s / (double)M : 0.0;
        double dm = *mean - (double)mf;
        q -= (double)M * dm * dm;
        if (q < 0) q = 0;
        var = M > 0 ? q / (double)M : 0.0;
        if (update) {
            double unb = M > 1 ? q / (double)(M - 1) : var;
            *mm = (float)(momentum * *mm + (1.0 - momentum) * *mean);
            *mv = (float)(momentum * *mv + (1.0 - momentum) * unb);
        }
    } else {
        *mean = *mm;
        var = *mv;
    }
    *inv = 1.0 / sqrt(var + eps);
}

/* ---- channels-last (NHWC in memory) operands: the same arithmetic with the channels in
 * vector lanes. Per channel, sums run in float over blocks of NHWC_RB positions (as the NCHW
 * loops' 16 float lanes run over a row) and the blocks are summed in double: the two agree to
 * float rounding, not bit for bit. The blocks' float sums (P: one row of C per block) are
 * made in parallel and added in block order afterwards, so the result does not depend on the
 * number of threads. Channels-last tensors come from the oneDNN chains, whose convolutions
 * already run on libgomp's pool: these loops run there too (nn_par_cl). */
enum { NHWC_RB = 64 };
static inline int64_t nhwc_blocks(int64_t M) { return (M + NHWC_RB - 1) / NHWC_RB; }
/* P[blk][c] = sum over the block's positions of (X - m[c]) (m NULL: of X), or of its square */
SP_CLONES static void nhwc_block_sums(float *P, const float *X, int64_t M, int64_t C, const float *m, int sq) {
    int64_t nb = nhwc_blocks(M);
#pragma omp parallel for schedule(static) if (nn_par_cl(M * C))
    for (int64_t k = 0; k < nb; k++) {
        float *fa = P + k * C;
        int64_t r0 = k * NHWC_RB, r1 = r0 + NHWC_RB < M ? r0 + NHWC_RB : M;
        for (int64_t c = 0; c < C; c++) fa[c] = 0;
        for (int64_t r = r0; r < r1; r++) {
            const float *p = X + r * C;
            if (sq)
                for (int64_t c = 0; c < C; c++) { float d = p[c] - m[c]; fa[c] += d * d; }
            else
                for (int64_t c = 0; c < C; c++) fa[c] += p[c];
        }
    }
}
/* s[c] = the blocks' sums of P added in double, in block order */
static void nhwc_fold(double *s, const float *P, int64_t nb, int64_t C) {
    for (int64_t c = 0; c < C; c++) s[c] = 0;
    for (int64_t k = 0; k < nb; k++)
        for (int64_t c = 0; c < C; c++) s[c] += P[k * C + c];
}
/* O = X * a + b [+ R] [ReLU] per channel over M channels-last rows (O may be X): BatchNorm's
 * normalisation here, the eval epilogue of the 1x1 GEMMs in conv_dnnl.c; par: on libgomp's pool */
SP_CLONES void sp_cpu_nhwc_apply(float *O, const float *X, const float *R, int64_t M, int64_t C, const float *a,
                                 const float *b, int relu, int par) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t r = 0; r < M; r++) {
        const float *p = X + r * C, *rr = R ? R + r * C : NULL;
        float *o = O + r * C;
        if (rr && relu)
            for (int64_t c = 0; c < C; c++) { float v = p[c] * a[c] + b[c] + rr[c]; o[c] = v > 0.0f ? v : 0.0f; }
        else if (rr)
            for (int64_t c = 0; c < C; c++) o[c] = p[c] * a[c] + b[c] + rr[c];
        else if (relu)
            for (int64_t c = 0; c < C; c++) { float v = p[c] * a[c] + b[c]; o[c] = v > 0.0f ? v : 0.0f; }
        else
            for (int64_t c = 0; c < C; c++) o[c] = p[c] * a[c] + b[c];
    }
}
static sp_status bn_forward_nhwc(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                 const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                 sp_tensor *moving_var, int training, int update, double momentum, double eps,
                                 const sp_tensor *residual, int relu) {
    int64_t C = x->shape[1], M = x->shape[0] * x->shape[2] * x->shape[3], nb = training ? nhwc_blocks(M) : 0;
    size_t n = (size_t)C * (2 * sizeof(double) + 3 * sizeof(float)) + sizeof(float) * (size_t)(nb * C);
    char *ws = sp_workspace(SP_DEV(x), 0, n);
    if (!ws) return sp_error(SP_ENOMEM, "batchnorm: no memory for %zu bytes of scratch", n);
    double *s = (double *)ws, *q = s + C;
    float *mf = (float *)(q + C), *a = mf + C, *b = a + C, *P = b + C;
    const float *X = F32(x), *G = F32(gamma), *B = F32(beta);
    float *sm = F32(save_mean), *si = F32(save_invstd), *mm = F32(moving_mean), *mv = F32(moving_var);
    if (training) {
        nhwc_block_sums(P, X, M, C, NULL, 0);
        nhwc_fold(s, P, nb, C);
        for (int64_t c = 0; c < C; c++) mf[c] = (float)(M > 0 ? s[c] / (double)M : 0.0);
        nhwc_block_sums(P, X, M, C, mf, 1);
        nhwc_fold(q, P, nb, C);
    }
    for (int64_t c = 0; c < C; c++) {
        double mean, inv;
        bn_channel_stats(training, update, M, training ? s[c] : 0, training ? q[c] : 0, training ? mf[c] : 0.0f,
                         &mm[c], &mv[c], momentum, eps, &mean, &inv);
        sm[c] = (float)mean;
        si[c] = (float)inv;
        a[c] = (float)(G[c] * inv), b[c] = (float)(B[c] - mean * inv * G[c]);
    }
    sp_cpu_nhwc_apply(F32(out), X, residual ? F32(residual) : NULL, M, C, a, b, relu, nn_par_cl(M * C));
    return SP_OK;
}

/* out [N,C,H,W] = (x - mean[c]) * invstd[c] * gamma[c] + beta[c] [+ residual] [then ReLU] */
static sp_status bn_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                            const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                            sp_tensor *moving_var, int training, int update, double momentum, double eps,
                            const sp_tensor *residual, int relu) {
    if (SP_CL_ANY(out, x, residual)) /* all channels-last (engine/ops) */
        return bn_forward_nhwc(out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var, training, update,
                               momentum, eps, residual, relu);
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    const float *X = F32(x), *G = F32(gamma), *B = F32(beta), *R = residual ? F32(residual) : NULL;
    float *O = F32(out), *sm = F32(save_mean), *si = F32(save_invstd), *mm = F32(moving_mean), *mv = F32(moving_var);
#pragma omp parallel for schedule(static) if (nn_par(N * C * HW))
    for (int64_t c = 0; c < C; c++) {
        double s = 0, q = 0, mean, inv;
        float mf = 0.0f;
        if (training) {
            for (int64_t n = 0; n < N; n++) s += row_sum(X + (n * C + c) * HW, HW);
            mf = (float)(M > 0 ? s / (double)M : 0.0); /* deviations about the float-rounded mean */
            for (int64_t n = 0; n < N; n++) q += row_sqdev(X + (n * C + c) * HW, HW, mf);
        }
        bn_channel_stats(training, update, M, s, q, mf, &mm[c], &mv[c], momentum, eps, &mean, &inv);
        sm[c] = (float)mean;
        si[c] = (float)inv;
        float a = (float)(G[c] * inv), b = (float)(B[c] - mean * inv * G[c]);
        for (int64_t n = 0; n < N; n++) {
            int64_t off = (n * C + c) * HW;
            bn_apply(O + off, X + off, R ? R + off : NULL, HW, a, b, relu);
        }
    }
    return SP_OK;
}

sp_status sp_cpu_batchnorm_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd, const sp_tensor *x,
                                   const sp_tensor *gamma, const sp_tensor *beta, sp_tensor *moving_mean,
                                   sp_tensor *moving_var, int training, int update, double momentum, double eps) {
    return bn_forward(out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var, training, update, momentum,
                      eps, NULL, 0);
}

/* BatchNorm, then + residual (optional), then ReLU (relu != 0), in one pass per channel */
sp_status sp_cpu_batchnorm_act_forward(sp_tensor *out, sp_tensor *save_mean, sp_tensor *save_invstd,
                                       const sp_tensor *x, const sp_tensor *gamma, const sp_tensor *beta,
                                       sp_tensor *moving_mean, sp_tensor *moving_var, int training, int update,
                                       double momentum, double eps, const sp_tensor *residual, int relu) {
    return bn_forward(out, save_mean, save_invstd, x, gamma, beta, moving_mean, moving_var, training, update, momentum,
                      eps, residual, relu);
}

/* row_gdot with g times 0 where y <= 0 (the gradient through a ReLU whose output is y,
 * computed as sp_cpu_relu_backward computes it, so the sums are the unfused ones) */
static inline void row_gdot_mask(const float *g, const float *y, const float *p, int64_t n, float m, double *sg,
                                 double *sgx) {
    float a[LANES] = {0}, b[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float k = y[i + j] > 0.0f ? 1.0f : 0.0f;
            float gv = g[i + j] * k; /* as sp_cpu_relu_backward */
            a[j] += gv; b[j] += gv * (p[i + j] - m);
        }
    double s = 0, t = 0;
    for (int j = 0; j < LANES; j++) { s += a[j]; t += b[j]; }
    for (; i < n; i++) { float gv = g[i] * (y[i] > 0.0f ? 1.0f : 0.0f); s += gv; t += gv * ((double)p[i] - m); }
    *sg += s;
    *sgx += t;
}

/* channels-last backward: per-channel sums of g (masked by y > 0 when y is given) and of
 * g*(x - mean), per block in float (PA, PB: a row of C per block, in parallel), then in
 * double in block order; then grad_x */
SP_CLONES static void nhwc_gdot(float *PA, float *PB, const float *GO, const float *Y, const float *X, int64_t M,
                                int64_t C, const float *m) {
    int64_t nb = nhwc_blocks(M);
#pragma omp parallel for schedule(static) if (nn_par_cl(M * C))
    for (int64_t k = 0; k < nb; k++) {
        float *fa = PA + k * C, *fb = PB + k * C;
        int64_t r0 = k * NHWC_RB, r1 = r0 + NHWC_RB < M ? r0 + NHWC_RB : M;
        for (int64_t c = 0; c < C; c++) fa[c] = 0, fb[c] = 0;
        for (int64_t r = r0; r < r1; r++) {
            const float *g = GO + r * C, *p = X + r * C, *y = Y ? Y + r * C : NULL;
            if (y)
                for (int64_t c = 0; c < C; c++) {
                    float gv = g[c] * (y[c] > 0.0f ? 1.0f : 0.0f);
                    fa[c] += gv;
                    fb[c] += gv * (p[c] - m[c]);
                }
            else
                for (int64_t c = 0; c < C; c++) { fa[c] += g[c]; fb[c] += g[c] * (p[c] - m[c]); }
        }
    }
}
SP_CLONES static void nhwc_gx(float *O, const float *GO, const float *Y, const float *X, int64_t M, int64_t C,
                              const float *k, const float *a, const float *b, const float *m, int full) {
#pragma omp parallel for schedule(static) if (nn_par_cl(M * C))
    for (int64_t r = 0; r < M; r++) {
        const float *g = GO + r * C, *p = X + r * C, *y = Y ? Y + r * C : NULL;
        float *o = O + r * C;
        for (int64_t c = 0; c < C; c++) {
            float gv = y ? g[c] * (y[c] > 0.0f ? 1.0f : 0.0f) : g[c];
            o[c] = full ? k[c] * (gv - a[c] - (p[c] - m[c]) * b[c]) : k[c] * gv;
        }
    }
}
static sp_status bn_backward_nhwc(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                  const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x,
                                  const sp_tensor *gamma, const sp_tensor *save_mean, const sp_tensor *save_invstd,
                                  int training) {
    int64_t C = x->shape[1], M = x->shape[0] * x->shape[2] * x->shape[3], nb = nhwc_blocks(M);
    size_t n = (size_t)C * (2 * sizeof(double) + 3 * sizeof(float)) + 2 * sizeof(float) * (size_t)(nb * C);
    char *ws = sp_workspace(SP_DEV(x), 0, n);
    if (!ws) return sp_error(SP_ENOMEM, "batchnorm backward: no memory for %zu bytes of scratch", n);
    double *sg = (double *)ws, *sgx = sg + C;
    float *k = (float *)(sgx + C), *a = k + C, *b = a + C, *PA = b + C, *PB = PA + nb * C;
    const float *G = F32(gamma), *sm = F32(save_mean), *si = F32(save_invstd);
    nhwc_gdot(PA, PB, F32(grad_out), y ? F32(y) : NULL, F32(x), M, C, sm);
    nhwc_fold(sg, PA, nb, C);
    nhwc_fold(sgx, PB, nb, C);
    for (int64_t c = 0; c < C; c++) {
        double inv = si[c], t = sgx[c] * inv;
        if (grad_gamma) F32(grad_gamma)[c] += (float)t;
        if (grad_beta) F32(grad_beta)[c] += (float)sg[c];
        k[c] = (float)(G[c] * inv);
        a[c] = M > 0 ? (float)(sg[c] / (double)M) : 0.0f;
        b[c] = M > 0 ? (float)(inv * t / (double)M) : 0.0f;
    }
    if (grad_x)
        nhwc_gx(F32(grad_x), F32(grad_out), y ? F32(y) : NULL, F32(x), M, C, k, a, b, sm, training && M > 0);
    return SP_OK;
}

/* grad_x [N,C,H,W]; grad_gamma [C] += sum(go*xhat); grad_beta [C] += sum(go) */
/* y (optional): the output of a ReLU that followed the BatchNorm; grad_out is the gradient
 * of that output and is taken as 0 where y <= 0 (ReLU's backward, fused) */
static sp_status bn_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                             const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x, const sp_tensor *gamma,
                             const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    if (SP_CL_ANY(grad_x, grad_out, y, x)) /* all channels-last (engine/ops) */
        return bn_backward_nhwc(grad_x, grad_gamma, grad_beta, grad_out, y, x, gamma, save_mean, save_invstd, training);
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3], M = N * HW;
    const float *X = F32(x), *GO = F32(grad_out), *G = F32(gamma), *sm = F32(save_mean), *si = F32(save_invstd);
    const float *Y = y ? F32(y) : NULL;
#pragma omp parallel for schedule(static) if (nn_par(N * C * HW))
    for (int64_t c = 0; c < C; c++) {
        double sg = 0, sgx = 0, inv = si[c];
        for (int64_t n = 0; n < N; n++) {
            int64_t off = (n * C + c) * HW;
            if (Y) row_gdot_mask(GO + off, Y + off, X + off, HW, sm[c], &sg, &sgx);
            else row_gdot(GO + off, X + off, HW, sm[c], &sg, &sgx);
        }
        sgx *= inv;
        if (grad_gamma) F32(grad_gamma)[c] += (float)sgx;
        if (grad_beta) F32(grad_beta)[c] += (float)sg;
        if (!grad_x) continue;
        double k = G[c] * inv;
        for (int64_t n = 0; n < N; n++) {
            const float *p = X + (n * C + c) * HW, *g = GO + (n * C + c) * HW, *yy = Y ? Y + (n * C + c) * HW : NULL;
            float *o = F32(grad_x) + (n * C + c) * HW;
            float kf = (float)k;
            if (training && M > 0) {
                float a = (float)(sg / (double)M), b = (float)(inv * sgx / (double)M), mf = sm[c];
                if (yy)
                    for (int64_t i = 0; i < HW; i++) {
                        float m = yy[i] > 0.0f ? 1.0f : 0.0f;
                        o[i] = kf * (g[i] * m - a - (p[i] - mf) * b);
                    }
                else
                    for (int64_t i = 0; i < HW; i++) o[i] = kf * (g[i] - a - (p[i] - mf) * b);
            } else if (yy) {
                for (int64_t i = 0; i < HW; i++) {
                    float m = yy[i] > 0.0f ? 1.0f : 0.0f;
                    o[i] = kf * (g[i] * m);
                }
            } else {
                for (int64_t i = 0; i < HW; i++) o[i] = kf * g[i];
            }
        }
    }
    return SP_OK;
}

sp_status sp_cpu_batchnorm_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                    const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *gamma,
                                    const sp_tensor *save_mean, const sp_tensor *save_invstd, int training) {
    return bn_backward(grad_x, grad_gamma, grad_beta, grad_out, NULL, x, gamma, save_mean, save_invstd, training);
}

sp_status sp_cpu_batchnorm_relu_backward(sp_tensor *grad_x, sp_tensor *grad_gamma, sp_tensor *grad_beta,
                                         const sp_tensor *grad_out, const sp_tensor *y, const sp_tensor *x,
                                         const sp_tensor *gamma, const sp_tensor *save_mean,
                                         const sp_tensor *save_invstd, int training) {
    return bn_backward(grad_x, grad_gamma, grad_beta, grad_out, y, x, gamma, save_mean, save_invstd, training);
}
