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

/* acc[32][NR] (+ old acc when add) = Σ over n pairs (a multiple of 16), stored to out (row
 * stride ldo floats): b is [n][NR]; a is n/16 steps of two A tiles, each 16 rows x 16 pairs
 * contiguous (1 KiB): [step][rows 0-15 | 16-31][row][pair], so that the kernel streams A
 * sequentially */
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
    for (int64_t p = 0; p < n; p += 16, a += 512) {
        _tile_loadd(4, a, 64);
        _tile_loadd(6, b + p * NR, NR * 4);
        _tile_loadd(7, b + p * NR + 16, NR * 4);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a + 256, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, ldo * 4);
    _tile_stored(1, out + 16, ldo * 4);
    _tile_stored(2, out + 16 * ldo, ldo * 4);
    _tile_stored(3, out + 16 * ldo + 16, ldo * 4);
}
/* the same, stored back to acc */
__attribute__((target("amx-tile,amx-bf16")))
static void kernel_amx(int64_t n, const uint32_t *a, const uint32_t *b, float *acc, int add) {
    kernel_amx_out(n, a, b, acc, add, acc, NR);
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

/* a row of 2n floats (n a multiple of 16) into its 16 pairs of each step (d: the row's
 * first, the steps 512 pairs apart; kernel_amx's A layout) */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void pack_row_amx(uint32_t *d, const float *ra, int64_t n) {
    for (int64_t p = 0; p < n; p += 16, d += 512) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(ra + 2 * p + 16), _mm512_loadu_ps(ra + 2 * p));
        _mm512_storeu_si512((void *)d, (__m512i)v);
    }
}

/* one GEMM's shape and the packers/kernels it runs with */
typedef struct {
    int64_t M, N, K, kp, mb, nb;
    int mr, amx, native;
    const sp_bf16_rows *A, *B;
    const sp_bf16_tile *C;
    void (*kern)(int64_t, const uint32_t *, const uint32_t *, float *, int);
    void (*pack)(uint32_t *, const float *, const float *, int);
} gemm_t;

/* row m of A into the A buffer ap laid out for mbv blocks (block ib); rb: 2kp + 2 floats */
static void pack_a_row(const gemm_t *g, int64_t m, uint32_t *ap, int64_t mbv, int64_t ib, float *rb) {
    int64_t kp = g->kp, K = g->K, i = m % g->mr;
    int mr = g->mr;
    const float *ra = rb;
    /* A's row in place when it is there whole and K needs no zero padding */
    const float *src = m < g->M && g->A->ptr && K == 2 * kp ? g->A->ptr(g->A->ctx, m, 0, K) : NULL;
    if (src) ra = src;
    else if (m < g->M) { g->A->row(g->A->ctx, m, 0, K, rb); for (int64_t k = K; k < 2 * kp; k++) rb[k] = 0.f; }
    for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
        int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
        uint32_t *blk = ap + (size_t)p0 * mbv * mr + (size_t)ib * n * mr;
        if (g->amx) {
            uint32_t *d = blk + (size_t)i * 16; /* row i: half i / 16, row i % 16 */
            if (m < g->M) pack_row_amx(d, ra + 2 * p0, n);
            else for (int64_t p = 0; p < n; p += 16) memset(d + p * 32, 0, 64);
        } else {
            uint32_t *d = blk + i;
            if (m < g->M) (g->native ? pack_row_avx : pack_row)(d, ra + 2 * p0, n);
            else for (int64_t p = 0; p < n; p++) d[p * MR] = 0;
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512bf16")))
static void pack_pairs_avx(uint32_t *dst, const float *r0, const float *r1, int64_t n) {
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r0 + j));
        __m256i hi = r1 ? (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(r1 + j)) : _mm256_setzero_si256();
        __m512i v = _mm512_or_si512(_mm512_cvtepu16_epi32(lo), _mm512_slli_epi32(_mm512_cvtepu16_epi32(hi), 16));
        _mm512_storeu_si512((void *)(dst + j), v);
    }
    for (; j < n; j++) dst[j] = bf16_bits(r0[j]) | (r1 ? bf16_bits(r1[j]) << 16 : 0u);
}
void sp_bf16_pack_pairs(uint32_t *dst, const float *r0, const float *r1, int64_t n) {
    if (sp_cpu_bf16_kernel() != SP_BF16_PORTABLE) { pack_pairs_avx(dst, r0, r1, n); return; }
    for (int64_t j = 0; j < n; j++) dst[j] = bf16_bits(r0[j]) | (r1 ? bf16_bits(r1[j]) << 16 : 0u);
}

/* B panel jb (columns n0.., cnt of them) into bp [kp][NR]; rb: BKB * NR floats */
static void pack_b_panel(const gemm_t *g, int64_t n0, int cnt, uint32_t *bp, float *rb) {
    const sp_bf16_rows *B = g->B;
    int64_t K = g->K, kr = (K + 1) / 2; /* pairs with data; the rest (AMX padding) zero */
    if (B->pairs) {
        if (cnt < NR) memset(bp, 0, (size_t)kr * NR * 4);
        B->pairs(B->ctx, 0, kr, n0, cnt, bp, NR);
    } else if (B->block) {
        for (int64_t k0 = 0; k0 < K; k0 += BKB) {
            int64_t nr = K - k0 < BKB ? K - k0 : BKB;
            B->block(B->ctx, k0, nr, n0, cnt, rb, NR);
            if (nr & 1) memset(rb + nr * NR, 0, NR * 4);
            for (int64_t q = 0; q < nr; q += 2) g->pack(bp + (k0 + q) / 2 * NR, rb + q * NR, rb + (q + 1) * NR, cnt);
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
            g->pack(bp + p * NR, x0, x1, cnt);
        }
    }
    if (g->kp > kr) memset(bp + kr * NR, 0, (size_t)(g->kp - kr) * NR * 4);
}

/* C block (ib, columns n0..n0+cnt) over the K block of n pairs at p0: a is that block's A
 * (its MR / MRX rows), b the panel's pairs from p0, acc its [mr][NR] accumulator; the last
 * K block goes straight to C when the writer allows (AMX, full blocks), else to acc */
static void block_mul(const gemm_t *g, int64_t ib, int64_t n0, int cnt, int64_t p0, int64_t n, const uint32_t *a,
                      const uint32_t *b, float *acc) {
    float *out;
    int64_t ldo;
    if (g->amx && g->C->ptr && cnt == NR && p0 + n == g->kp && ib * g->mr + g->mr <= g->M &&
        (out = g->C->ptr(g->C->ctx, ib * g->mr, g->mr, n0, cnt, &ldo)) != NULL)
        kernel_amx_out(n, a, b, acc, p0 > 0, out, ldo);
    else
        g->kern(n, a, b, acc, p0 > 0);
}
static void block_store(const gemm_t *g, int64_t ib, int64_t n0, int cnt, const float *acc) {
    int rows = (int)(g->M - ib * g->mr < g->mr ? g->M - ib * g->mr : g->mr);
    int64_t ldo;
    if (g->amx && g->C->ptr && cnt == NR && rows == g->mr && g->C->ptr(g->C->ctx, ib * g->mr, g->mr, n0, cnt, &ldo))
        return; /* block_mul stored it */
    g->C->store(g->C->ctx, ib * g->mr, rows, n0, cnt, acc, NR);
}

sp_status sp_bf16_gemm(sp_device *dev, int64_t M, int64_t N, int64_t K, const sp_bf16_rows *A,
                       const sp_bf16_rows *B, const sp_bf16_tile *C) {
    if (M <= 0 || N <= 0) return SP_OK;
    int which = sp_cpu_bf16_kernel();
    gemm_t g = { .M = M, .N = N, .K = K, .A = A, .B = B, .C = C };
    g.amx = which == SP_BF16_AMX;
    g.native = which != SP_BF16_PORTABLE;
    g.mr = g.amx ? MRX : MR;
    /* kp: pairs of K; AMX steps 16 pairs (32 k) at a time, so K is padded with zeros */
    g.kp = (K + 1) / 2;
    if (g.amx) g.kp = (g.kp + 15) / 16 * 16;
    g.mb = (M + g.mr - 1) / g.mr;
    g.nb = (N + NR - 1) / NR;
    g.kern = g.amx ? kernel_amx : g.native ? kernel_avx : kernel_portable;
    g.pack = g.native ? pack_pair_avx : pack_pair;
    int64_t kp = g.kp, mb = g.mb, nb = g.nb;
    int mr = g.mr;
    size_t rowf = (size_t)BKB * NR > (size_t)(2 * kp + 2) ? (size_t)BKB * NR : (size_t)(2 * kp + 2);
    size_t panel = (size_t)kp * NR * 4, ablock = (size_t)kp * mr * 4;
    int failed = 0;
    int64_t work = M * N * K;
    /* Two ways to share the work. Wide A (M > N, all of packed B within 2 MiB: the deep
     * layers at small batch): the team packs all of B once, then each thread takes blocks of
     * A rows, packs them itself and runs them against every panel, so that A (the weights)
     * is read once. Otherwise the team packs all of A (K blocks of KCP pairs, [kb][mb][block],
     * one K block of all of A staying in L2), then each thread takes B panels, packs and runs
     * them against all of A. A block is [pairs][MR] (avx512, portable) or kernel_amx's tile
     * steps (amx). */
    if (M > N && (size_t)nb * panel <= ((size_t)2 << 20) && mb >= 2) {
        uint32_t *ball = sp_workspace(dev, 0, (size_t)nb * panel);
        if (!ball) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for the packed B operand (%zu bytes)", (size_t)nb * panel);
#pragma omp parallel if (work > ((int64_t)1 << 22))
        {
            /* slot 1 of each thread: its A block, float rows, its C row of blocks [nb][mr][NR] */
            uint32_t *ab = sp_workspace(dev, 1, ablock + rowf * 4 + (size_t)nb * mr * NR * 4);
            float *rb = ab ? (float *)(ab + (size_t)kp * mr) : NULL, *cp = ab ? rb + rowf : NULL;
            if (!ab) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(dynamic, 1)
            for (int64_t jb = 0; jb < nb; jb++) {
                if (!ab) continue;
                int64_t n0 = jb * NR;
                pack_b_panel(&g, n0, (int)(N - n0 < NR ? N - n0 : NR), ball + (size_t)jb * kp * NR, rb);
            }
            if (ab && g.amx) amx_begin();
#pragma omp for schedule(dynamic, 1)
            for (int64_t ib = 0; ib < mb; ib++) {
                if (!ab) continue;
                for (int64_t i = 0; i < mr; i++) pack_a_row(&g, ib * mr + i, ab, 1, 0, rb);
                for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
                    int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
                    for (int64_t jb = 0; jb < nb; jb++) {
                        int64_t n0 = jb * NR;
                        block_mul(&g, ib, n0, (int)(N - n0 < NR ? N - n0 : NR), p0, n, ab + (size_t)p0 * mr,
                                  ball + (size_t)jb * kp * NR + p0 * NR, cp + (size_t)jb * mr * NR);
                    }
                }
                for (int64_t jb = 0; jb < nb; jb++) {
                    int64_t n0 = jb * NR;
                    block_store(&g, ib, n0, (int)(N - n0 < NR ? N - n0 : NR), cp + (size_t)jb * mr * NR);
                }
            }
            if (ab && g.amx) amx_end();
        }
        if (failed) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for a packed A block");
        return SP_OK;
    }
    size_t abytes = (size_t)mb * ablock;
    uint32_t *ap = sp_workspace(dev, 0, abytes);
    if (!ap) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for the packed A operand (%zu bytes)", abytes);
#pragma omp parallel if (work > ((int64_t)1 << 22))
    {
        /* slot 1 of each thread: its B panel, float rows (of B, or of A while A is packed)
         * and its C panel [mb][mr][NR]; the calling thread's slot 0 holds packed A */
        uint32_t *bp = sp_workspace(dev, 1, panel + rowf * 4 + (size_t)mb * mr * NR * 4);
        float *rb = bp ? (float *)(bp + (size_t)kp * NR) : NULL, *cp = bp ? rb + rowf : NULL;
        if (!bp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t m = 0; m < mb * mr; m++)
            if (bp) pack_a_row(&g, m, ap, mb, m / mr, rb);
        if (bp && g.amx) amx_begin();
#pragma omp for schedule(dynamic, 1)
        for (int64_t jb = 0; jb < nb; jb++) {
            if (!bp) continue;
            int64_t n0 = jb * NR;
            int cnt = (int)(N - n0 < NR ? N - n0 : NR);
            pack_b_panel(&g, n0, cnt, bp, rb);
            for (int64_t p0 = 0; p0 < kp; p0 += KCP) {
                int64_t n = kp - p0 < KCP ? kp - p0 : KCP;
                const uint32_t *ablk = ap + (size_t)p0 * mb * mr;
                for (int64_t ib = 0; ib < mb; ib++)
                    block_mul(&g, ib, n0, cnt, p0, n, ablk + (size_t)ib * n * mr, bp + p0 * NR, cp + (size_t)ib * mr * NR);
            }
            for (int64_t ib = 0; ib < mb; ib++) block_store(&g, ib, n0, cnt, cp + (size_t)ib * mr * NR);
        }
        if (bp && g.amx) amx_end();
    }
    if (failed) return sp_error(SP_ENOMEM, "bf16 gemm: no memory for a packed B panel");
    return SP_OK;
}

/* ---- a Dense forward at small batch: out[n, o] = Σ_k bf16(x[n, k]) · bf16(w[o, k]) (+ bias[o])
 * The GEMM above packs all of W (the GEMM's A, O x I) into pairs on every call: for a
 * classifier head at batch 1 that was 0.5 ms of ResNet50's 2048 -> 1001 layer against 53 µs
 * for float32's sgemv. Here each weight row is rounded as it is read (vcvtne2ps2bf16, the
 * packing's instruction) and multiplied by x's rows, rounded once into slot 0 of the
 * workspace, with vdpbf16ps (the microkernel's instruction): the same products, float32
 * sums in another order. Rows of x in blocks of 4 (two weight rows at a time), 2 and 1
 * (four at a time), so 8 accumulators are in flight; output rows split over libgomp's pool. */
enum { DR_MAXN = 8 };
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static inline __m512bh dr_w(const float *w, int64_t k, int64_t I) {
    if (k + 32 <= I) return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(w + k + 16), _mm512_loadu_ps(w + k));
    int64_t r = I - k;
    __mmask16 lo = (__mmask16)(r >= 16 ? 0xffffu : (1u << r) - 1u);
    __mmask16 hi = (__mmask16)(r <= 16 ? 0u : r >= 32 ? 0xffffu : (1u << (r - 16)) - 1u);
    return _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, w + k + 16), _mm512_maskz_loadu_ps(lo, w + k));
}
/* R rows of x (bf16, ldx elements apart, zero padded to Ip) against OB weight rows from o0 */
#define DR_BLOCK(R, OB)                                                                                           \
    __attribute__((target("avx512f,avx512bw,avx512bf16"))) static void dr_block_##R##_##OB(                      \
        float *out, int64_t O, const uint16_t *xb, int64_t ldx, const float *w, int64_t I, int64_t o0,           \
        const float *bias) {                                                                                      \
        __m512 acc[R][OB];                                                                                        \
        for (int r = 0; r < R; r++)                                                                               \
            for (int j = 0; j < OB; j++) acc[r][j] = _mm512_setzero_ps();                                         \
        for (int64_t k = 0; k < I; k += 32) {                                                                     \
            __m512bh wv[OB];                                                                                      \
            for (int j = 0; j < OB; j++) wv[j] = dr_w(w + (o0 + j) * I, k, I);                                     \
            for (int r = 0; r < R; r++) {                                                                         \
                __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(xb + r * ldx + k));                     \
                for (int j = 0; j < OB; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], xv, wv[j]);                 \
            }                                                                                                     \
        }                                                                                                         \
        for (int r = 0; r < R; r++)                                                                               \
            for (int j = 0; j < OB; j++)                                                                          \
                out[r * O + o0 + j] = _mm512_reduce_add_ps(acc[r][j]) + (bias ? bias[o0 + j] : 0.f);              \
    }
DR_BLOCK(4, 2)
DR_BLOCK(4, 1)
DR_BLOCK(2, 4)
DR_BLOCK(2, 1)
DR_BLOCK(1, 4)
DR_BLOCK(1, 1)

/* d[i] = bf16(s[i]) for i < n, nothing written past n (AVX512_BF16 only) */
__attribute__((target("avx512f,avx512bw,avx512bf16")))
void sp_bf16_round_avx512(uint16_t *d, const float *s, int64_t n) {
    for (int64_t k = 0; k < n; k += 32) {
        __m512i v = (__m512i)dr_w(s, k, n);
        if (k + 32 <= n) _mm512_storeu_si512((void *)(d + k), v);
        else _mm512_mask_storeu_epi16((void *)(d + k), (__mmask32)((1ull << (n - k)) - 1u), v);
    }
}
static void dr_round_x(uint16_t *xb, int64_t ldx, const float *x, int64_t N, int64_t I) {
    for (int64_t n = 0; n < N; n++) {
        sp_bf16_round_avx512(xb + n * ldx, x + n * I, I);
        memset(xb + n * ldx + I, 0, sizeof(uint16_t) * (size_t)(ldx - I)); /* zero past I */
    }
}

int sp_bf16_dense_rows_applies(int64_t N) { return N >= 1 && N <= DR_MAXN && sp_cpu_bf16_kernel() != SP_BF16_PORTABLE; }

sp_status sp_bf16_dense_rows(sp_device *dev, float *out, const float *x, const float *w, const float *bias, int64_t N,
                             int64_t I, int64_t O) {
    int64_t ldx = (I + 31) / 32 * 32;
    uint16_t *xb = sp_workspace(dev, 0, sizeof(uint16_t) * (size_t)(N * ldx));
    if (!xb) return sp_error(SP_ENOMEM, "Dense (bfloat16): no memory for x rounded (%lld bytes)", (long long)(2 * N * ldx));
    dr_round_x(xb, ldx, x, N, I);
    enum { OBLK = 16 };
    int64_t nblk = (O + OBLK - 1) / OBLK;
#pragma omp parallel for schedule(static) if (N * I * O > ((int64_t)1 << 18))
    for (int64_t b = 0; b < nblk; b++) {
        int64_t o0 = b * OBLK, o1 = o0 + OBLK < O ? o0 + OBLK : O;
        for (int64_t n = 0; n < N;) {
            int64_t R = N - n >= 4 ? 4 : N - n >= 2 ? 2 : 1;
            const uint16_t *xr = xb + n * ldx;
            float *orow = out + n * O;
            int64_t o = o0;
            if (R == 4) {
                for (; o + 2 <= o1; o += 2) dr_block_4_2(orow, O, xr, ldx, w, I, o, bias);
                for (; o < o1; o++) dr_block_4_1(orow, O, xr, ldx, w, I, o, bias);
            } else if (R == 2) {
                for (; o + 4 <= o1; o += 4) dr_block_2_4(orow, O, xr, ldx, w, I, o, bias);
                for (; o < o1; o++) dr_block_2_1(orow, O, xr, ldx, w, I, o, bias);
            } else {
                for (; o + 4 <= o1; o += 4) dr_block_1_4(orow, O, xr, ldx, w, I, o, bias);
                for (; o < o1; o++) dr_block_1_1(orow, O, xr, ldx, w, I, o, bias);
            }
            n += R;
        }
    }
    return SP_OK;
}
