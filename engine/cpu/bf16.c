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
 * workspace). B is packed in panels of NR = 32 columns as [K/2][NR] bf16 pairs (k, k+1),
 * which is both what vdpbf16ps (_mm512_dpbf16_ps) and an AMX B tile (16 pair-rows of 16
 * columns, 64 bytes) consume. A is packed per microkernel:
 *   amx      Intel AMX tiles (AMX-BF16, Sapphire Rapids and later): A in blocks of 32 rows,
 *            each row its K/2 pairs contiguous (two 16-row A tiles), K padded with zeros to
 *            a multiple of 32; a 32x32 C block lives in four tiles, tdpbf16ps.
 *   avx512   AVX512_BF16: A in blocks of MR = 8 rows as [K/2][8] pairs, vdpbf16ps.
 *   portable the same sums in a plain C loop (slowly).
 * Every path rounds the operands to bf16 the same way (nearest even) and adds exact
 * float32 products in float32, so results agree up to summation order. The fastest kernel
 * this CPU and kernel grant is chosen at first use (CPUID, XCR0, and for AMX the Linux
 * arch_prctl(ARCH_REQ_XCOMP_PERM) grant of the tile data state); sp_cpu_bf16_set_kernel
 * picks another available one (lua: spore.config{bf16_kernel=...}, SPORE_BF16_KERNEL).
 * Threads: OpenMP over B panels; each thread packs its panel into its own workspace. */
#include "cpu/nn_common.h"
#include "cpu/bf16.h"

#include <immintrin.h>

/* AMX needs GCC >= 11 or clang >= 12 (the _tile_* intrinsics) and Linux (arch_prctl) */
#if defined(__x86_64__) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define SP_BF16_HAVE_AMX 1
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define SP_BF16_HAVE_AMX 0
#endif

enum { MR = 8, NR = 32, KCP = 128, MRX = 32 /* AMX: rows of A per block */, BKB = 64 /* rows per B->block */ };

static int avx512_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw");
}
int sp_cpu_bf16_native(void) {
    static int v = -1;
    if (v < 0) v = avx512_ok();
    return v;
}

/* AMX-TILE and AMX-BF16 in CPUID leaf 7, the tile state enabled by the OS in XCR0 (bits 17,
 * 18), and the process granted the tile data state (Linux >= 5.16; asked once). */
static int amx_probe(void) {
#if SP_BF16_HAVE_AMX
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!((d >> 22) & 1) || !((d >> 24) & 1)) return 0; /* AMX-BF16, AMX-TILE */
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) != 3) return 0;
    /* ARCH_REQ_XCOMP_PERM (0x1023), XFEATURE_XTILEDATA (18) */
    if (syscall(SYS_arch_prctl, 0x1023, 18) != 0) return 0;
    return avx512_ok(); /* the packing around the tiles uses AVX512_BF16 */
#else
    return 0;
#endif
}

static int kernel_ok[3] = { 1, -1, -1 };
static int kernel_sel = -1;
static const char *const KERNEL_NAMES[3] = { "portable", "avx512", "amx" };

int sp_cpu_bf16_kernel_available(int k) {
    if (k < 0 || k > 2) return 0;
    int v = __atomic_load_n(&kernel_ok[k], __ATOMIC_ACQUIRE);
    if (v < 0) {
        v = k == SP_BF16_AMX ? amx_probe() : sp_cpu_bf16_native();
        __atomic_store_n(&kernel_ok[k], v, __ATOMIC_RELEASE);
    }
    return v;
}
int sp_cpu_bf16_kernel(void) {
    int k = __atomic_load_n(&kernel_sel, __ATOMIC_ACQUIRE);
    if (k < 0) {
        k = sp_cpu_bf16_kernel_available(SP_BF16_AMX) ? SP_BF16_AMX
          : sp_cpu_bf16_kernel_available(SP_BF16_AVX512) ? SP_BF16_AVX512 : SP_BF16_PORTABLE;
        __atomic_store_n(&kernel_sel, k, __ATOMIC_RELEASE);
    }
    return k;
}
sp_status sp_cpu_bf16_set_kernel(int k) {
    if (k < 0 || k > 2) return sp_error(SP_EINVAL, "bf16 kernel: %d is none of 0 (portable), 1 (avx512), 2 (amx)", k);
    if (!sp_cpu_bf16_kernel_available(k))
        return sp_error(SP_EINVAL, "bf16 kernel '%s' does not run here (%s)", KERNEL_NAMES[k],
                        k == SP_BF16_AMX ? "needs AMX-BF16 and AVX512_BF16, and Linux's grant of the AMX tile state"
                                         : "needs AVX512_BF16");
    __atomic_store_n(&kernel_sel, k, __ATOMIC_RELEASE);
    return SP_OK;
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


#if SP_BF16_HAVE_AMX
/* ---- AMX: tiles 0-3 hold C (2x2 blocks of 16x16 float), 4-5 A (16 rows x 32 bf16), 6-7 B
 * (16 pair-rows x 16 columns) */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

/* a static object: GCC 12 drops the stores into a local config before ldtilecfg (it does
 * not see the builtin read them) and the tiles then fault */
static const amx_cfg AMX_CFG __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows = { 16, 16, 16, 16, 16, 16, 16, 16 },
};
__attribute__((target("amx-tile,amx-bf16")))
static void amx_begin(void) { _tile_loadconfig(&AMX_CFG); }
__attribute__((target("amx-tile,amx-bf16")))
static void amx_end(void) { _tile_release(); }

/* acc[32][NR] (=|+=) Σ over n pairs (a multiple of 16): a is [32 rows][n pairs], b [n][NR] */
__attribute__((target("amx-tile,amx-bf16")))
static void kernel_amx(int64_t n, const uint32_t *a, const uint32_t *b, float *acc, int add) {
    if (add) {
        _tile_loadd(0, acc, NR * 4);
        _tile_loadd(1, acc + 16, NR * 4);
        _tile_loadd(2, acc + 16 * NR, NR * 4);
        _tile_loadd(3, acc + 16 * NR + 16, NR * 4);
    } else {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    }
    const uint32_t *a1 = a + 16 * n;
    for (int64_t p = 0; p < n; p += 16) {
        _tile_loadd(4, a + p, n * 4);
        _tile_loadd(6, b + p * NR, NR * 4);
        _tile_loadd(7, b + p * NR + 16, NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + p, n * 4);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, acc, NR * 4);
    _tile_stored(1, acc + 16, NR * 4);
    _tile_stored(2, acc + 16 * NR, NR * 4);
    _tile_stored(3, acc + 16 * NR + 16, NR * 4);
}
/* the same, the result stored to out (row stride ldo floats) instead of back to acc */
__attribute__((target("amx-tile,amx-bf16")))
static void kernel_amx_out(int64_t n, const uint32_t *a, const uint32_t *b, const float *acc, int add, float *out,
                           int64_t ldo) {
    if (add) {
        _tile_loadd(0, acc, NR * 4);
        _tile_loadd(1, acc + 16, NR * 4);
        _tile_loadd(2, acc + 16 * NR, NR * 4);
        _tile_loadd(3, acc + 16 * NR + 16, NR * 4);
    } else {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    }
    const uint32_t *a1 = a + 16 * n;
    for (int64_t p = 0; p < n; p += 16) {
        _tile_loadd(4, a + p, n * 4);
        _tile_loadd(6, b + p * NR, NR * 4);
        _tile_loadd(7, b + p * NR + 16, NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + p, n * 4);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, ldo * 4);
    _tile_stored(1, out + 16, ldo * 4);
    _tile_stored(2, out + 16 * ldo, ldo * 4);
    _tile_stored(3, out + 16 * ldo + 16, ldo * 4);
}
#else
static void amx_begin(void) {}
static void amx_end(void) {}
static void kernel_amx(int64_t n, const uint32_t *a, const uint32_t *b, float *acc, int add) {
    (void)n; (void)a; (void)b; (void)acc; (void)add;
}
static void kernel_amx_out(int64_t n, const uint32_t *a, const uint32_t *b, const float *acc, int add, float *out,
                           int64_t ldo) {
    (void)n; (void)a; (void)b; (void)acc; (void)add; (void)out; (void)ldo;
}
#endif

/* a row of K floats into n contiguous pairs (ra[K..] zero up to 2n) */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void pack_row_contig_avx(uint32_t *d, const float *ra, int64_t n) {
    int64_t p = 0;
    for (; p + 16 <= n; p += 16) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(ra + 2 * p + 16), _mm512_loadu_ps(ra + 2 * p));
        _mm512_storeu_si512((void *)(d + p), (__m512i)v);
    }
    for (; p < n; p++) d[p] = bf16_bits(ra[2 * p]) | (bf16_bits(ra[2 * p + 1]) << 16);
}

sp_status sp_bf16_gemm(sp_device *dev, int64_t M, int64_t N, int64_t K, const sp_bf16_rows *A,
                       const sp_bf16_rows *B, const sp_bf16_tile *C) {
    if (M <= 0 || N <= 0) return SP_OK;
    int which = sp_cpu_bf16_kernel(), amx = which == SP_BF16_AMX, native = which != SP_BF16_PORTABLE;
    int mr = amx ? MRX : MR;
    /* kp: pairs of K; AMX steps 16 pairs (32 k) at a time, so K is padded with zeros */
    int64_t kp = (K + 1) / 2;
    if (amx) kp = (kp + 15) / 16 * 16;
    int64_t mb = (M + mr - 1) / mr, nb = (N + NR - 1) / NR;
    /* A: K blocks of KCP pairs, [kb][mb][block], so that one K block of all of A (M x 256
     * bf16) stays in L2 while a thread walks it for one B panel; a block is [pairs][MR]
     * (avx512, portable) or [MRX rows][pairs] (amx) */
    size_t abytes = (size_t)mb * (size_t)kp * mr * 4;
    uint32_t *ap = sp_workspace(dev, 0, abytes);
    if (!ap) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for the packed A operand (%zu bytes)", abytes);
    void (*kern)(int64_t, const uint32_t *, const uint32_t *, float *, int) =
        amx ? kernel_amx : native ? kernel_avx : kernel_portable;
    void (*pack)(uint32_t *, const float *, const float *, int) = native ? pack_pair_avx : pack_pair;
    int failed = 0;
    int64_t work = M * N * K;
#pragma omp parallel if (work > ((int64_t)1 << 22))
    {
        /* slot 1 of each thread: its B panel, a block of BKB float rows of B (or one row of
         * A while A is packed) and its C panel [mb][mr][NR]; the calling thread's slot 0
         * holds packed A, shared by the team */
        size_t rowf = (size_t)BKB * NR > (size_t)(2 * kp + 2) ? (size_t)BKB * NR : (size_t)(2 * kp + 2);
        size_t bbytes = (size_t)kp * NR * 4 + rowf * 4 + (size_t)mb * mr * NR * 4;
        uint32_t *bp = sp_workspace(dev, 1, bbytes);
        float *rb = bp ? (float *)(bp + (size_t)kp * NR) : NULL, *cp = bp ? rb + rowf : NULL;
        if (!bp) {
#pragma omp atomic write
            failed = 1;
        }
        /* pack A, rows over the team */
#pragma omp for schedule(static)
        for (int64_t m = 0; m < mb * mr; m++) {
            if (!bp) continue;
            int64_t ib = m / mr, i = m % mr;
            const float *ra = rb;
            /* A's row in place when it is there whole and K needs no zero padding */
            const float *src = m < M && A->ptr && K == 2 * kp ? A->ptr(A->ctx, m, 0, K) : NULL;
            if (src) ra = src;
            else if (m < M) { A->row(A->ctx, m, 0, K, rb); for (int64_t k = K; k < 2 * kp; k++) rb[k] = 0.f; }
            for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
                int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
                uint32_t *blk = ap + (size_t)p0 * mb * mr + (size_t)ib * n * mr;
                if (amx) {
                    uint32_t *d = blk + (size_t)i * n;
                    if (m < M) pack_row_contig_avx(d, ra + 2 * p0, n);
                    else memset(d, 0, (size_t)n * 4);
                } else {
                    uint32_t *d = blk + i;
                    if (m < M) (native ? pack_row_avx : pack_row)(d, ra + 2 * p0, n);
                    else for (int64_t p = 0; p < n; p++) d[p * MR] = 0;
                }
            }
        }
        if (bp && amx) amx_begin();
#pragma omp for schedule(dynamic, 1)
        for (int64_t jb = 0; jb < nb; jb++) {
            if (!bp) continue;
            int64_t n0 = jb * NR;
            int cnt = (int)(N - n0 < NR ? N - n0 : NR);
            int64_t kr = (K + 1) / 2; /* pairs with data; the rest (AMX padding) zero */
            if (B->block) {
                for (int64_t k0 = 0; k0 < K; k0 += BKB) {
                    int64_t nr = K - k0 < BKB ? K - k0 : BKB;
                    B->block(B->ctx, k0, nr, n0, cnt, rb, NR);
                    if (nr & 1) memset(rb + nr * NR, 0, NR * 4);
                    for (int64_t q = 0; q < nr; q += 2) pack(bp + (k0 + q) / 2 * NR, rb + q * NR, rb + (q + 1) * NR, cnt);
                }
            } else {
                float *r0 = rb, *r1 = rb + NR;
                for (int64_t p = 0; p < kr; p++) {
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
            }
            if (kp > kr) memset(bp + kr * NR, 0, (size_t)(kp - kr) * NR * 4);
            /* AMX straight into C where the writer allows (full blocks only) */
            int direct = amx && C->ptr && cnt == NR;
            for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
                int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
                const uint32_t *ablk = ap + (size_t)p0 * mb * mr;
                for (int64_t ib = 0; ib < mb; ib++) {
                    float *acc = cp + (size_t)ib * mr * NR, *out;
                    int64_t ldo;
                    if (direct && p0 + n == kp && ib * mr + mr <= M &&
                        (out = C->ptr(C->ctx, ib * mr, mr, n0, cnt, &ldo)) != NULL)
                        kernel_amx_out(n, ablk + (size_t)ib * n * mr, bp + p0 * NR, acc, p0 > 0, out, ldo);
                    else
                        kern(n, ablk + (size_t)ib * n * mr, bp + p0 * NR, acc, p0 > 0);
                }
            }
            for (int64_t ib = 0; ib < mb; ib++) {
                int rows = (int)(M - ib * mr < mr ? M - ib * mr : mr);
                int64_t ldo;
                if (direct && rows == mr && C->ptr(C->ctx, ib * mr, mr, n0, cnt, &ldo)) continue;
                C->store(C->ctx, ib * mr, rows, n0, cnt, cp + (size_t)ib * mr * NR, NR);
            }
        }
        if (bp && amx) amx_end();
    }
    if (failed) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for a packed B panel");
    return SP_OK;
}
