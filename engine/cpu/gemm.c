/* gemm.c — the CPU matmul kernel through OpenBLAS (checked by engine/ops/reduce_ops.c).
 * out[M,N] = alpha * op(a)[M,K] · op(b)[K,N] + beta * out. */
#include "core/internal.h"
#include "cpu/cpu_kernels.h"

#include <cblas.h>

/* A 2-D operand BLAS can read directly: row-major with unit column stride, or a
 * transposed view (unit row stride). Returns 0 when a copy is needed. */
int sp_blas_layout(const sp_tensor *t, int *trans, int64_t *ld) {
    if (t->strides[1] == 1 && t->strides[0] >= (t->shape[1] > 1 ? t->shape[1] : 1)) { *trans = 0; *ld = t->strides[0]; return 1; }
    if (t->strides[0] == 1 && t->strides[1] >= (t->shape[0] > 1 ? t->shape[0] : 1)) { *trans = 1; *ld = t->strides[1]; return 1; }
    if (t->shape[0] <= 1 && t->shape[1] <= 1) { *trans = 0; *ld = 1; return 1; }
    return 0;
}

sp_status sp_cpu_matmul(sp_tensor *out, const sp_tensor *a, const sp_tensor *b, int trans_a, int trans_b,
                        double alpha, double beta) {
    int dt = out->dtype;
    int64_t M = out->shape[0], N = out->shape[1], K = trans_a ? a->shape[0] : a->shape[1];
    sp_tensor *ca = NULL, *cb = NULL, *co = NULL;
    int ta, tb, to;
    int64_t lda, ldb, ldo;
    sp_status st = SP_OK;
    if (!sp_blas_layout(a, &ta, &lda)) { if ((st = sp_tensor_clone(&ca, a, dt))) goto done; sp_blas_layout(ca, &ta, &lda); }
    if (!sp_blas_layout(b, &tb, &ldb)) { if ((st = sp_tensor_clone(&cb, b, dt))) goto done; sp_blas_layout(cb, &tb, &ldb); }
    if (!sp_blas_layout(out, &to, &ldo) || to) {
        if ((st = sp_tensor_clone(&co, out, dt))) goto done;
        sp_blas_layout(co, &to, &ldo);
    }
    {
        const sp_tensor *A = ca ? ca : a, *B = cb ? cb : b;
        sp_tensor *O = co ? co : out;
        CBLAS_TRANSPOSE TA = (ta ^ (trans_a != 0)) ? CblasTrans : CblasNoTrans;
        CBLAS_TRANSPOSE TB = (tb ^ (trans_b != 0)) ? CblasTrans : CblasNoTrans;
        if (K == 0) {
            /* BLAS leaves beta*C; make that explicit for K == 0 */
            st = sp_cpu_binary_scalar(O, O, beta, SP_OP_MUL, 0);
        } else if (dt == SP_FLOAT32) {
            cblas_sgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, (float)alpha, SP_DATA(A), (int)lda,
                        SP_DATA(B), (int)ldb, (float)beta, SP_DATA(O), (int)ldo);
        } else {
            cblas_dgemm(CblasRowMajor, TA, TB, (int)M, (int)N, (int)K, alpha, SP_DATA(A), (int)lda,
                        SP_DATA(B), (int)ldb, beta, SP_DATA(O), (int)ldo);
        }
        if (co) st = sp_tensor_copy(out, co);
    }
done:
    sp_tensor_free(ca);
    sp_tensor_free(cb);
    sp_tensor_free(co);
    return st;
}
