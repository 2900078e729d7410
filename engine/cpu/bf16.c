/* bf16.c — bfloat16 compute for Conv2d and Dense (Model amp_level "O2" on the CPU).
 *
 * Tensors stay float32 (the master weights, the activations, the gradients); every GEMM
 * operand is rounded to bfloat16 (round to nearest even, sp_f32_to_bf16's rule) while it is
 * packed, products are exact in float32 and accumulate in float32. That is what a network
 * cast to bf16 computes in its convolutions and matmuls; the elementwise ops, BatchNorm and
 * the loss stay float32.
 *
 * One blocked GEMM, C[M,N] (=|+=) A[M,K] · B[K,N], reads its operands through row
 * providers (so im2col, transposes and NCHW-as-matrix views are packed straight from the
 * tensors, no float32 copy) and writes C through a tile writer (NCHW scatter, bias, col2im
 * workspace). Packing: A in blocks of MR rows as [K/2][MR] bf16 pairs, B in panels of NR
 * columns as [K/2][NR] bf16 pairs: the layout vdpbf16ps (_mm512_dpbf16_ps) consumes. The
 * microkernel needs AVX512_BF16 (checked at run time with CPUID); without it a portable
 * loop computes the same sums (slowly), so results agree everywhere up to summation order.
 * Threads: OpenMP over B panels; each thread packs its panel into its own workspace. */
#include "cpu/nn_common.h"
#include "cpu/bf16.h"

#include <immintrin.h>

enum { MR = 8, NR = 32, KCP = 128 };

int sp_cpu_bf16_native(void) {
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") ? 1 : 0;
    }
    return v;
}

static inline uint32_t bf16_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u >> 16) | 0x40u; /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}
static inline float bf16_val(uint32_t h) {
    uint32_t u = h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- the microkernel: acc[MR][NR] = Σ_p Apack[p][m] · Bpack[p][n] over kp pairs */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void kernel_avx(int64_t kp, const uint32_t *a, const uint32_t *b, float *acc, int add) {
    __m512 c[MR][2];
    if (add)
        for (int i = 0; i < MR; i++) { c[i][0] = _mm512_loadu_ps(acc + i * NR); c[i][1] = _mm512_loadu_ps(acc + i * NR + 16); }
    else
        for (int i = 0; i < MR; i++) { c[i][0] = _mm512_setzero_ps(); c[i][1] = _mm512_setzero_ps(); }
    for (int64_t p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(b + p * NR));
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + p * NR + 16));
        const uint32_t *ap = a + p * MR;
        for (int i = 0; i < MR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)ap[i]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], av, b0);
            c[i][1] = _mm512_dpbf16_ps(c[i][1], av, b1);
        }
    }
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(acc + i * NR, c[i][0]);
        _mm512_storeu_ps(acc + i * NR + 16, c[i][1]);
    }
}

static void kernel_portable(int64_t kp, const uint32_t *a, const uint32_t *b, float *acc, int add) {
    if (!add) for (int i = 0; i < MR * NR; i++) acc[i] = 0.f;
    for (int64_t p = 0; p < kp; p++)
        for (int i = 0; i < MR; i++) {
            uint32_t av = a[p * MR + i];
            float a0 = bf16_val(av & 0xffff), a1 = bf16_val(av >> 16);
            for (int j = 0; j < NR; j++) {
                uint32_t bv = b[p * NR + j];
                acc[i * NR + j] += a0 * bf16_val(bv & 0xffff) + a1 * bf16_val(bv >> 16);
            }
        }
}

/* pack rows r0 (k) and r1 (k+1) of cnt <= NR floats into NR bf16 pairs (zero padded) */
static void pack_pair(uint32_t *dst, const float *r0, const float *r1, int cnt) {
    int j = 0;
    for (; j < cnt; j++) dst[j] = bf16_bits(r0[j]) | (bf16_bits(r1[j]) << 16);
    for (; j < NR; j++) dst[j] = 0;
}

/* the same two with AVX512_BF16's vcvtneps2bf16 (round to nearest even; like the portable
 * path except that it flushes float32 denormals, below 1.2e-38, to zero) */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void pack_pair_avx(uint32_t *dst, const float *r0, const float *r1, int cnt) {
    if (cnt < NR) { pack_pair(dst, r0, r1, cnt); return; }
    for (int j = 0; j < NR; j += 16) {
        __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r0 + j));
        __m256i hi = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r1 + j));
        __m512i v = _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
        _mm512_storeu_si512((void *)(dst + j), v);
    }
}
/* a row of K floats (ra[K] == 0 when K is odd) into pairs d[p*MR], p < kp */
static void pack_row(uint32_t *d, const float *ra, int64_t kp) {
    for (int64_t p = 0; p < kp; p++) d[p * MR] = bf16_bits(ra[2 * p]) | (bf16_bits(ra[2 * p + 1]) << 16);
}
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void pack_row_avx(uint32_t *d, const float *ra, int64_t kp) {
    int64_t p = 0;
    uint32_t tmp[16];
    for (; p + 16 <= kp; p += 16) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(ra + 2 * p + 16), _mm512_loadu_ps(ra + 2 * p));
        _mm512_storeu_si512((void *)tmp, (__m512i)v);
        for (int t = 0; t < 16; t++) d[(p + t) * MR] = tmp[t];
    }
    for (; p < kp; p++) d[p * MR] = bf16_bits(ra[2 * p]) | (bf16_bits(ra[2 * p + 1]) << 16);
}

sp_status sp_bf16_gemm(sp_device *dev, int64_t M, int64_t N, int64_t K, const sp_bf16_rows *A,
                       const sp_bf16_rows *B, const sp_bf16_tile *C) {
    if (M <= 0 || N <= 0) return SP_OK;
    int native = sp_cpu_bf16_native();
    int64_t kp = (K + 1) / 2, mb = (M + MR - 1) / MR, nb = (N + NR - 1) / NR;
    /* A: K blocks of KCP pairs, [kb][mb][pairs in block][MR], so that one K block of all of
     * A (M x 256 bf16) stays in L2 while a thread walks it for one B panel */
    size_t abytes = (size_t)mb * (size_t)kp * MR * 4;
    uint32_t *ap = sp_workspace(dev, 0, abytes + (size_t)(K + 2) * 4);
    if (!ap) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for the packed A operand (%zu bytes)", abytes);
    {
        float *ra = (float *)(ap + (size_t)mb * kp * MR);
        for (int64_t m = 0; m < mb * MR; m++) {
            int64_t ib = m / MR, i = m % MR;
            if (m < M) { A->row(A->ctx, m, 0, K, ra); ra[K] = 0.f; }
            for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
                int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
                uint32_t *d = ap + (size_t)p0 * mb * MR + (size_t)ib * n * MR + i;
                if (m < M) (native ? pack_row_avx : pack_row)(d, ra + 2 * p0, n);
                else for (int64_t p = 0; p < n; p++) d[p * MR] = 0;
            }
        }
    }
    void (*kern)(int64_t, const uint32_t *, const uint32_t *, float *, int) = native ? kernel_avx : kernel_portable;
    void (*pack)(uint32_t *, const float *, const float *, int) = native ? pack_pair_avx : pack_pair;
    int failed = 0;
    int64_t work = M * N * K;
#pragma omp parallel if (work > ((int64_t)1 << 22))
    {
        /* slot 1 of each thread: its B panel, two float rows and its C panel [mb][MR][NR];
         * the calling thread's slot 0 holds packed A, shared by the team */
        size_t bbytes = (size_t)kp * NR * 4 + (size_t)2 * NR * 4 + (size_t)mb * MR * NR * 4;
        uint32_t *bp = sp_workspace(dev, 1, bbytes);
        if (!bp) {
#pragma omp atomic write
            failed = 1;
        } else {
            float *r0 = (float *)(bp + (size_t)kp * NR), *r1 = r0 + NR, *cp = r1 + NR;
#pragma omp for schedule(dynamic, 1)
            for (int64_t jb = 0; jb < nb; jb++) {
                int64_t n0 = jb * NR;
                int cnt = (int)(N - n0 < NR ? N - n0 : NR);
                for (int64_t p = 0; p < kp; p++) {
                    const float *x0 = B->ptr ? B->ptr(B->ctx, 2 * p, n0, cnt) : NULL, *x1 = NULL;
                    if (!x0) { B->row(B->ctx, 2 * p, n0, cnt, r0); x0 = r0; }
                    if (2 * p + 1 < K) {
                        x1 = B->ptr ? B->ptr(B->ctx, 2 * p + 1, n0, cnt) : NULL;
                        if (!x1) { B->row(B->ctx, 2 * p + 1, n0, cnt, r1); x1 = r1; }
                    } else {
                        for (int j = 0; j < cnt; j++) r1[j] = 0.f;
                        x1 = r1;
                    }
                    pack(bp + p * NR, x0, x1, cnt);
                }
                for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
                    int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
                    const uint32_t *ablk = ap + (size_t)p0 * mb * MR;
                    for (int64_t ib = 0; ib < mb; ib++)
                        kern(n, ablk + (size_t)ib * n * MR, bp + p0 * NR, cp + (size_t)ib * MR * NR, p0 > 0);
                }
                for (int64_t ib = 0; ib < mb; ib++) {
                    int rows = (int)(M - ib * MR < MR ? M - ib * MR : MR);
                    C->store(C->ctx, ib * MR, rows, n0, cnt, cp + (size_t)ib * MR * NR, NR);
                }
            }
        }
    }
    if (failed) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for a packed B panel");
    return SP_OK;
}
