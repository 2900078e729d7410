/* bf16.h — the bfloat16 GEMM behind amp_level "O2" (engine-private; engine/cpu/bf16.c).
 * Operands come through row providers, the result through a tile writer, so that
 * convolution (im2col, col2im, NCHW) needs no float32 copy of its operands. */
#ifndef SP_CPU_BF16_H
#define SP_CPU_BF16_H
#include "core/device.h"

/* Row provider: fills dst[0..cnt) with the operand's row r, columns c0..c0+cnt-1 (float32;
 * rounded to bf16 while packed). Called from several threads at once: ctx is read-only. */
typedef struct sp_bf16_rows {
    void (*row)(const void *ctx, int64_t r, int64_t c0, int64_t cnt, float *dst);
    /* optional (B only): a pointer to those cnt contiguous floats, or NULL (then row) */
    const float *(*ptr)(const void *ctx, int64_t r, int64_t c0, int64_t cnt);
    /* optional (B only, used before ptr and row): rows r0..r0+nr-1, columns c0..c0+cnt-1 into
     * dst[(r - r0)*ld + j], for providers whose per-row setup (index arithmetic) is costly */
    void (*block)(const void *ctx, int64_t r0, int64_t nr, int64_t c0, int64_t cnt, float *dst, int ld);
    /* optional (B only, used before the others): rows 2p and 2p+1 already rounded and packed,
     * pairs p0..p0+np-1 over columns c0..c0+cnt-1 into dst[(p - p0)*ld + j] (bf16 pair bits:
     * low half row 2p, high half row 2p+1), for operands converted to bf16 beforehand */
    void (*pairs)(const void *ctx, int64_t p0, int64_t np, int64_t c0, int64_t cnt, uint32_t *dst, int ld);
    const void *ctx;
} sp_bf16_rows;
/* Tile writer: acc[i*ld + j] is C(m0+i, n0+j), i < rows, j < cols. Tiles of distinct n0
 * come from distinct threads at once. */
typedef struct sp_bf16_tile {
    void (*store)(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, const float *acc, int ld);
    /* optional: where C(m0 + i, n0 + j) = p[i*ld + j] for the whole rows x cols block when
     * the store would only copy (no bias, no accumulation), else NULL; the AMX kernel then
     * writes its tiles there and store is not called for that block */
    float *(*ptr)(const void *ctx, int64_t m0, int rows, int64_t n0, int cols, int64_t *ld);
    const void *ctx;
} sp_bf16_tile;

/* C[M,N] = A[M,K] · B[K,N] with bf16 operands and float32 accumulation; scratch from dev's
 * workspace slots 0 (calling thread) and 1 (each thread). */
sp_status sp_bf16_gemm(sp_device *dev, int64_t M, int64_t N, int64_t K, const sp_bf16_rows *A,
                       const sp_bf16_rows *B, const sp_bf16_tile *C);
/* dst[j] = bf16(r0[j]) | bf16(r1[j]) << 16, j < n (r1 NULL: zero), rounded as the running
 * kernel's packing rounds (nearest even) */
void sp_bf16_pack_pairs(uint32_t *dst, const float *r0, const float *r1, int64_t n);
/* A Dense forward of N <= 8 rows (out[N,O] = x[N,I] · w[O,I]ᵀ + bias, all float32, bf16
 * products, float32 sums) with each weight row rounded as it is read, for the avx512 and amx
 * kernels; sp_bf16_dense_rows_applies(N) says when it runs (else sp_bf16_gemm). x rounded
 * into dev's workspace slot 0. */
int sp_bf16_dense_rows_applies(int64_t N);
sp_status sp_bf16_dense_rows(sp_device *dev, float *out, const float *x, const float *w, const float *bias, int64_t N,
                             int64_t I, int64_t O);
/* d[i] = bf16(s[i]) for i < n (vcvtne2ps2bf16: nearest even, float32 denormals flushed,
 * NaN kept NaN); only where sp_cpu_bf16_native() */
void sp_bf16_round_avx512(uint16_t *d, const float *s, int64_t n);
/* 1 when this CPU runs vdpbf16ps (AVX512_BF16), else 0. */
int sp_cpu_bf16_native(void);
/* the GEMM's microkernels (sp_cpu_bf16_kernel and friends are public: spore.h) */
enum { SP_BF16_PORTABLE = 0, SP_BF16_AVX512 = 1, SP_BF16_AMX = 2 };

#endif
