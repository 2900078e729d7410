// elementwise.cu — copy/convert, fill, binary and unary ops, reductions, ReLU backward.
// Element conversions mirror engine/core/dtype.c (sp_load_f64, sp_store_f64,
// sp_store_i64) and engine/cpu/copy.c's convert_one, so the GPU stores the CPU's values.
#include "cuda_internal.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <string.h>

namespace {

__device__ __forceinline__ int64_t offset_of(const spc_view &v, int64_t i) {
    if (v.ndim == 1) return i * v.strides[0]; // i < shape[0]; contiguous views arrive as 1-D
    int64_t off = 0;
    for (int d = v.ndim - 1; d >= 0; d--) {
        int64_t n = v.shape[d];
        off += (i % n) * v.strides[d];
        i /= n;
    }
    return off;
}

__host__ __device__ __forceinline__ size_t dsize(int dt) {
    switch (dt) {
    case SP_FLOAT64: case SP_INT64: case SP_UINT64: return 8;
    case SP_FLOAT32: case SP_INT32: case SP_UINT32: return 4;
    case SP_FLOAT16: case SP_BFLOAT16: case SP_INT16: case SP_UINT16: return 2;
    default: return 1;
    }
}

__device__ __forceinline__ char *at(const spc_view &v, int64_t i) {
    return (char *)v.data + offset_of(v, i) * (int64_t)dsize(v.dtype);
}

__device__ __forceinline__ bool is_int(int dt) { return dt >= SP_INT8 && dt <= SP_BOOL; }

__device__ double load_f64(int d, const char *p) {
    switch (d) {
    case SP_FLOAT32: return *(const float *)p;
    case SP_FLOAT64: return *(const double *)p;
    case SP_FLOAT16: return (double)__half2float(*(const __half *)p);
    case SP_BFLOAT16: return (double)__bfloat162float(*(const __nv_bfloat16 *)p);
    case SP_INT8: return *(const int8_t *)p;
    case SP_UINT8: return *(const uint8_t *)p;
    case SP_BOOL: return *(const uint8_t *)p != 0;
    case SP_INT16: return *(const int16_t *)p;
    case SP_UINT16: return *(const uint16_t *)p;
    case SP_INT32: return *(const int32_t *)p;
    case SP_UINT32: return *(const uint32_t *)p;
    case SP_INT64: return (double)*(const int64_t *)p;
    case SP_UINT64: return (double)*(const uint64_t *)p;
    }
    return 0;
}

__device__ __forceinline__ int64_t sat(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

__device__ void store_f64(int d, char *p, double v) {
    switch (d) {
    case SP_FLOAT32: *(float *)p = (float)v; return;
    case SP_FLOAT64: *(double *)p = v; return;
    case SP_FLOAT16: *(__half *)p = __double2half(v); return;
    case SP_BFLOAT16: *(__nv_bfloat16 *)p = __double2bfloat16(v); return;
    case SP_BOOL: *(uint8_t *)p = (v != 0); return;
    case SP_INT8: *(int8_t *)p = (int8_t)sat(v, -128, 127); return;
    case SP_UINT8: *(uint8_t *)p = (uint8_t)sat(v, 0, 255); return;
    case SP_INT16: *(int16_t *)p = (int16_t)sat(v, -32768, 32767); return;
    case SP_UINT16: *(uint16_t *)p = (uint16_t)sat(v, 0, 65535); return;
    case SP_INT32: *(int32_t *)p = (int32_t)sat(v, -2147483648.0, 2147483647.0); return;
    case SP_UINT32: *(uint32_t *)p = (uint32_t)sat(v, 0, 4294967295.0); return;
    case SP_INT64:
        *(int64_t *)p = (v != v) ? 0 : v >= 9223372036854775807.0 ? INT64_MAX
                                     : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
        return;
    case SP_UINT64:
        *(uint64_t *)p = (v != v || v <= 0) ? 0 : v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
        return;
    }
}

__device__ int64_t load_i64(int d, const char *p) {
    if (d == SP_INT64) return *(const int64_t *)p;
    if (d == SP_UINT64) return (int64_t) * (const uint64_t *)p;
    return (int64_t)load_f64(d, p);
}

__device__ void store_i64(int d, char *p, int64_t v) {
    switch (d) {
    case SP_INT64: *(int64_t *)p = v; return;
    case SP_UINT64: *(uint64_t *)p = (uint64_t)v; return;
    case SP_INT8: *(int8_t *)p = (int8_t)v; return;
    case SP_UINT8: *(uint8_t *)p = (uint8_t)v; return;
    case SP_BOOL: *(uint8_t *)p = v != 0; return;
    case SP_INT16: *(int16_t *)p = (int16_t)v; return;
    case SP_UINT16: *(uint16_t *)p = (uint16_t)v; return;
    case SP_INT32: *(int32_t *)p = (int32_t)v; return;
    case SP_UINT32: *(uint32_t *)p = (uint32_t)v; return;
    default: store_f64(d, p, (double)v);
    }
}

// engine/cpu/copy.c's convert_one
__device__ void convert_one(int dd, char *dp, int sd, const char *sp) {
    if (dd == sd) {
        for (size_t k = 0; k < dsize(dd); k++) dp[k] = sp[k];
        return;
    }
    if (is_int(dd) && is_int(sd) && dd != SP_BOOL && sd != SP_BOOL) store_i64(dd, dp, load_i64(sd, sp));
    else if (dd == SP_BFLOAT16 && sd == SP_FLOAT32) *(__nv_bfloat16 *)dp = __float2bfloat16_rn(*(const float *)sp);
    else store_f64(dd, dp, load_f64(sd, sp));
}

__global__ void k_copy(spc_view dst, spc_view src, int64_t n) {
    GRID_STRIDE(i, n) convert_one(dst.dtype, at(dst, i), src.dtype, at(src, i));
}

__global__ void k_fill(spc_view t, int64_t n, unsigned long long bits) {
    size_t sz = dsize(t.dtype);
    GRID_STRIDE(i, n) {
        char *p = at(t, i);
        for (size_t k = 0; k < sz; k++) p[k] = (char)((bits >> (8 * k)) & 0xff);
    }
}

__device__ __forceinline__ double apply(int op, double a, double b) {
    switch (op) {
    case SP_OP_ADD: return a + b;
    case SP_OP_SUB: return a - b;
    case SP_OP_MUL: return a * b;
    case SP_OP_DIV: return a / b;
    case SP_OP_MAX: return (a != a || a >= b) ? a : b;
    case SP_OP_MIN: return (a != a || a <= b) ? a : b;
    case SP_OP_POW: return pow(a, b);
    case SP_OP_ADD_RELU: { double s = a + b; return s > 0 ? s : (s != s ? s : 0); }
    }
    return 0;
}

// float32 arithmetic as engine/cpu/elementwise.c's float32 loops (pow, max, min in double)
__device__ __forceinline__ float apply_f(int op, float a, float b) {
    switch (op) {
    case SP_OP_ADD: return a + b;
    case SP_OP_SUB: return a - b;
    case SP_OP_MUL: return a * b;
    case SP_OP_DIV: return a / b;
    case SP_OP_ADD_RELU: { float v = a + b; return v > 0.0f ? v : 0.0f; }
    }
    return (float)apply(op, a, b);
}

__global__ void k_binary_f32(spc_view o, spc_view a, spc_view b, int64_t n, int op) {
    GRID_STRIDE(i, n) {
        float x = *(const float *)at(a, i), y = *(const float *)at(b, i);
        *(float *)at(o, i) = apply_f(op, x, y);
    }
}
__global__ void k_binary_f32_flat(float *o, const float *a, const float *b, int64_t n, int op) {
    GRID_STRIDE(i, n) o[i] = apply_f(op, a[i], b[i]);
}
__global__ void k_binary(spc_view o, spc_view a, spc_view b, int64_t n, int op) {
    GRID_STRIDE(i, n) store_f64(o.dtype, at(o, i), apply(op, load_f64(a.dtype, at(a, i)), load_f64(b.dtype, at(b, i))));
}
__global__ void k_binary_scalar_f32(spc_view o, spc_view a, int64_t n, float s, int op) {
    GRID_STRIDE(i, n) *(float *)at(o, i) = apply_f(op, *(const float *)at(a, i), s);
}
__global__ void k_binary_scalar(spc_view o, spc_view a, int64_t n, double s, int op, int reverse) {
    GRID_STRIDE(i, n) {
        double x = load_f64(a.dtype, at(a, i));
        store_f64(o.dtype, at(o, i), reverse ? apply(op, s, x) : apply(op, x, s));
    }
}

__global__ void k_relu_f32(spc_view o, spc_view a, int64_t n) {
    GRID_STRIDE(i, n) { float x = *(const float *)at(a, i); *(float *)at(o, i) = x > 0.0f ? x : 0.0f; }
}
__global__ void k_unary(spc_view o, spc_view a, int64_t n, int op) {
    GRID_STRIDE(i, n) {
        double x = load_f64(a.dtype, at(a, i)), r = 0;
        switch (op) {
        case SP_UN_NEG: r = -x; break;
        case SP_UN_ABS: r = fabs(x); break;
        case SP_UN_EXP: r = exp(x); break;
        case SP_UN_LOG: r = log(x); break;
        case SP_UN_SQRT: r = sqrt(x); break;
        case SP_UN_TANH: r = tanh(x); break;
        case SP_UN_SIGMOID: r = 1.0 / (1.0 + exp(-x)); break;
        case SP_UN_RELU: r = x > 0 ? x : 0; break;
        }
        store_f64(o.dtype, at(o, i), r);
    }
}

__global__ void k_relu_backward(float *gx, const float *go, const float *y, int64_t n) {
    GRID_STRIDE(i, n) gx[i] = go[i] * (y[i] > 0.0f ? 1.0f : 0.0f);
}

// ---- reductions: engine/cpu/reduce.c's reduce_run over a strided run ----------------
// (first NaN wins with its index; otherwise the extreme, the first one on ties)
struct acc { double v; int64_t i; int nan; };
__device__ __forceinline__ acc better(acc x, acc y, bool want_max) {
    if (x.i < 0) return y;
    if (y.i < 0) return x;
    if (x.nan || y.nan) {
        if (x.nan && y.nan) return x.i < y.i ? x : y;
        return x.nan ? x : y;
    }
    if (want_max ? y.v > x.v : y.v < x.v) return y;
    if (y.v == x.v && y.i < x.i) return y;
    return x;
}

const int RED_THREADS = 512;

__global__ void __launch_bounds__(RED_THREADS) k_reduce_all(spc_view a, int64_t n, int op, double *out) {
    __shared__ double s_sum[RED_THREADS];
    __shared__ acc s_acc[RED_THREADS];
    bool sum = op == SP_RED_SUM || op == SP_RED_MEAN, want_max = op == SP_RED_MAX || op == SP_RED_ARGMAX;
    double s = 0;
    acc best = {0, -1, 0};
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        double v = load_f64(a.dtype, at(a, i));
        if (sum) { s += v; continue; }
        acc c = {v, i, v != v};
        best = better(best, c, want_max);
    }
    s_sum[threadIdx.x] = s;
    s_acc[threadIdx.x] = best;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) {
            s_sum[threadIdx.x] += s_sum[threadIdx.x + w];
            s_acc[threadIdx.x] = better(s_acc[threadIdx.x], s_acc[threadIdx.x + w], want_max);
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        acc r = s_acc[0];
        if (op == SP_RED_SUM) *out = s_sum[0];
        else if (op == SP_RED_MEAN) *out = s_sum[0] / (double)n;
        else if (op >= SP_RED_ARGMAX) *out = (double)r.i;
        else *out = r.nan ? (double)NAN : r.v;
    }
}

// sum over many blocks: block b sums its grid-stride share into part[b] (double)
__global__ void __launch_bounds__(RED_THREADS) k_sum_partial(spc_view a, int64_t n, double *part) {
    __shared__ double sh[RED_THREADS];
    double s = 0;
    GRID_STRIDE(i, n) s += load_f64(a.dtype, at(a, i));
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

// one thread per output: a's dim d reduced (outer positions in row-major order)
__global__ void k_reduce_dim(spc_view out, spc_view a, int op, int d, int64_t total) {
    int64_t len = a.shape[d], sd = a.strides[d];
    size_t sz = dsize(a.dtype);
    bool want_max = op == SP_RED_MAX || op == SP_RED_ARGMAX;
    GRID_STRIDE(k, total) {
        int64_t rem = k, off = 0;
        for (int i = a.ndim - 1; i >= 0; i--) {
            if (i == d) continue;
            off += (rem % a.shape[i]) * a.strides[i];
            rem /= a.shape[i];
        }
        const char *p = (const char *)a.data + off * (int64_t)sz;
        double r = 0;
        if (len > 0) {
            if (op == SP_RED_SUM || op == SP_RED_MEAN) {
                double s = 0;
                for (int64_t j = 0; j < len; j++) s += load_f64(a.dtype, p + j * sd * (int64_t)sz);
                r = op == SP_RED_MEAN ? s / (double)len : s;
            } else {
                double best = load_f64(a.dtype, p);
                int64_t bi = 0;
                bool nan = best != best;
                for (int64_t j = 1; j < len && !nan; j++) {
                    double v = load_f64(a.dtype, p + j * sd * (int64_t)sz);
                    if (v != v) { best = v; bi = j; nan = true; break; }
                    if (want_max ? v > best : v < best) { best = v; bi = j; }
                }
                r = op >= SP_RED_ARGMAX ? (double)bi : best;
            }
        }
        char *po = at(out, k);
        if (op >= SP_RED_ARGMAX) store_i64(SP_INT64, po, (int64_t)r);
        else store_f64(out.dtype, po, r);
    }
}

bool contiguous(const spc_view *v) {
    int64_t s = 1;
    for (int d = v->ndim - 1; d >= 0; d--) {
        if (v->shape[d] != 1 && v->strides[d] != s) return false;
        s *= v->shape[d];
    }
    return true;
}

int64_t numel(const spc_view *v) {
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    return n;
}

// A contiguous view of n elements as 1-D (no index arithmetic per element in the kernels).
spc_view flat(const spc_view *v, int64_t n) {
    spc_view f = *v;
    f.ndim = 1;
    f.shape[0] = n;
    f.strides[0] = 1;
    return f;
}
// both contiguous: both flattened; otherwise as they are
void flatten2(spc_view *a, spc_view *b, int64_t n) {
    if (contiguous(a) && contiguous(b)) { *a = flat(a, n); *b = flat(b, n); }
}

} // namespace

extern "C" sp_status spc_copy_convert(int dev, const spc_view *dst, const spc_view *src) {
    CTX(c, dev);
    int64_t n = numel(dst);
    if (n == 0) return SP_OK;
    if (dst->dtype == src->dtype && contiguous(dst) && contiguous(src))
        return spc_copy(dev, dst->data, src->data, (size_t)n * dsize(dst->dtype));
    spc_view d = *dst, s = *src;
    flatten2(&d, &s, n);
    k_copy<<<spc_blocks(n), 256, 0, c->stream>>>(d, s, n);
    LAUNCHED(c, "copy");
    return SP_OK;
}

extern "C" sp_status spc_fill_bytes(int dev, const spc_view *t, uint64_t bits) {
    CTX(c, dev);
    int64_t n = numel(t);
    if (n == 0) return SP_OK;
    if (bits == 0 && contiguous(t)) {
        CK(c, cudaMemsetAsync(t->data, 0, (size_t)n * dsize(t->dtype), c->stream));
        return SP_OK;
    }
    k_fill<<<spc_blocks(n), 256, 0, c->stream>>>(contiguous(t) ? flat(t, n) : *t, n, (unsigned long long)bits);
    LAUNCHED(c, "fill");
    return SP_OK;
}

extern "C" sp_status spc_binary(int dev, const spc_view *out, const spc_view *a, const spc_view *b, int op) {
    CTX(c, dev);
    int64_t n = numel(out);
    if (n == 0) return SP_OK;
    if (out->dtype == SP_FLOAT32 && a->dtype == SP_FLOAT32 && b->dtype == SP_FLOAT32) {
        if (contiguous(out) && contiguous(a) && contiguous(b) && numel(a) == n && numel(b) == n)
            k_binary_f32_flat<<<spc_blocks(n), 256, 0, c->stream>>>((float *)out->data, (const float *)a->data,
                                                                 (const float *)b->data, n, op);
        else
            k_binary_f32<<<spc_blocks(n), 256, 0, c->stream>>>(*out, *a, *b, n, op);
    } else {
        spc_view o = *out, x = *a, y = *b;
        if (contiguous(&o) && contiguous(&x) && contiguous(&y)) { o = flat(&o, n); x = flat(&x, n); y = flat(&y, n); }
        k_binary<<<spc_blocks(n), 256, 0, c->stream>>>(o, x, y, n, op);
    }
    LAUNCHED(c, "binary");
    return SP_OK;
}

extern "C" sp_status spc_binary_scalar(int dev, const spc_view *out, const spc_view *a, double s, int op, int reverse) {
    CTX(c, dev);
    int64_t n = numel(a);
    if (n == 0) return SP_OK;
    bool f32 = out->dtype == SP_FLOAT32 && a->dtype == SP_FLOAT32 && !reverse &&
               (op == SP_OP_ADD || op == SP_OP_SUB || op == SP_OP_MUL || op == SP_OP_DIV);
    spc_view o = *out, x = *a;
    flatten2(&o, &x, n);
    if (f32) k_binary_scalar_f32<<<spc_blocks(n), 256, 0, c->stream>>>(o, x, n, (float)s, op);
    else k_binary_scalar<<<spc_blocks(n), 256, 0, c->stream>>>(o, x, n, s, op, reverse);
    LAUNCHED(c, "binary_scalar");
    return SP_OK;
}

extern "C" sp_status spc_unary(int dev, const spc_view *out, const spc_view *a, int op) {
    CTX(c, dev);
    int64_t n = numel(a);
    if (n == 0) return SP_OK;
    spc_view o = *out, x = *a;
    flatten2(&o, &x, n);
    if (op == SP_UN_RELU && out->dtype == SP_FLOAT32 && a->dtype == SP_FLOAT32)
        k_relu_f32<<<spc_blocks(n), 256, 0, c->stream>>>(o, x, n);
    else
        k_unary<<<spc_blocks(n), 256, 0, c->stream>>>(o, x, n, op);
    LAUNCHED(c, "unary");
    return SP_OK;
}

extern "C" sp_status spc_reduce_all(int dev, const spc_view *a, int op, double *value) {
    CTX(c, dev);
    int64_t n = numel(a);
    spc_view v = contiguous(a) ? flat(a, n) : *a;
    // sums of many elements: partial sums over up to 1024 blocks, then one block adds them
    // (the extremes and arg-extremes, rarer on big tensors, in one block)
    int64_t blocks = (op == SP_RED_SUM || op == SP_RED_MEAN) ? (n + RED_THREADS * 16 - 1) / (RED_THREADS * 16) : 1;
    if (blocks > 1024) blocks = 1024;
    size_t bytes = sizeof(double) * (size_t)(blocks + 1);
    double *d = (double *)spc_scratch(c, bytes);
    if (!d) return SP_ENOMEM;
    if (blocks > 1) {
        k_sum_partial<<<(unsigned)blocks, RED_THREADS, 0, c->stream>>>(v, n, d + 1);
        spc_view pv;
        memset(&pv, 0, sizeof pv);
        pv.data = d + 1;
        pv.dtype = SP_FLOAT64;
        pv.ndim = 1;
        pv.shape[0] = blocks;
        pv.strides[0] = 1;
        cudaError_t e0 = cudaGetLastError();
        if (e0 == cudaSuccess) k_reduce_all<<<1, RED_THREADS, 0, c->stream>>>(pv, blocks, SP_RED_SUM, d);
        if (e0 != cudaSuccess) {
            spc_scratch_free(c, d, bytes);
            return sp_error(SP_EDEVICE, "cuda:%d: reduce_all: %s (%s)", dev, cudaGetErrorName(e0), cudaGetErrorString(e0));
        }
    } else {
        k_reduce_all<<<1, RED_THREADS, 0, c->stream>>>(v, n, op, d);
    }
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaMemcpyAsync(value, d, sizeof(double), cudaMemcpyDeviceToHost, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    spc_scratch_free(c, d, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sp_error(SP_EDEVICE, "cuda:%d: reduce_all: %s (%s)", dev, cudaGetErrorName(e), cudaGetErrorString(e));
    }
    if (op == SP_RED_MEAN && blocks > 1) *value /= (double)n;
    return SP_OK;
}

extern "C" sp_status spc_reduce_dim(int dev, const spc_view *out, const spc_view *a, int op, int d) {
    CTX(c, dev);
    int64_t total = 1;
    for (int i = 0; i < a->ndim; i++)
        if (i != d) total *= a->shape[i];
    if (total == 0) return SP_OK;
    k_reduce_dim<<<spc_blocks(total), 256, 0, c->stream>>>(*out, *a, op, d, total);
    LAUNCHED(c, "reduce_dim");
    return SP_OK;
}

extern "C" sp_status spc_relu_backward(int dev, float *gx, const float *go, const float *y, int64_t n) {
    CTX(c, dev);
    if (n == 0) return SP_OK;
    k_relu_backward<<<spc_blocks(n), 256, 0, c->stream>>>(gx, go, y, n);
    LAUNCHED(c, "relu_backward");
    return SP_OK;
}
