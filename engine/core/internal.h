/* internal.h — engine-private definitions shared by engine/ files (never by the FFI). */
#ifndef SPORE_INTERNAL_H
#define SPORE_INTERNAL_H

#include "spore.h"
#include "error.h"

#include <stdatomic.h>
#include <stdbool.h>

struct sp_device;

typedef struct sp_storage {
    void *data;            /* device memory: reachable by host code only when dev->host_visible */
    struct sp_device *dev; /* the device that owns data (cpu for adopted memory) */
    size_t nbytes;
    atomic_int refcount;
    sp_release_fn release; /* adopted memory: called with ctx when the storage dies */
    void *ctx;
    int owned;             /* 1: allocated by dev->alloc */
    /* Write tracking, for caches of derived data (conv_dnnl.c keeps weights in oneDNN's
     * layouts): dirty is set by every path that can write the bytes (SP_DATA or F32 on a
     * non-const tensor, sp_elem_ptr_rw, sp_tensor_data), and cleared only by such a cache.
     * exposed: a raw pointer went to host code (sp_tensor_data), which may write through it
     * at any time, so nothing derived from these bytes may be kept. */
    atomic_int dirty;
    atomic_int exposed;
    uint64_t id;           /* unique for the process's life (never reused, unlike the address) */
    uint64_t epoch;        /* the cache's: bumped when it clears dirty (under its lock) */
    int cached;            /* the cache holds entries for this storage (under its lock) */
} sp_storage;

struct sp_tensor {
    sp_storage *st;
    int dtype;
    int ndim;
    int64_t shape[SP_MAX_DIMS];
    int64_t strides[SP_MAX_DIMS]; /* elements */
    int64_t offset;               /* elements */
};

/* Engine-internal address of t's first element, on whatever device holds it. Kernels
 * (which run "on" that device) use it; the public sp_tensor_data() refuses device memory. */
static inline void sp_storage_touch(sp_storage *s) {
    if (!atomic_load_explicit(&s->dirty, memory_order_relaxed)) atomic_store_explicit(&s->dirty, 1, memory_order_relaxed);
}
static inline const void *sp_data_ro(const sp_tensor *t) {
    return (const char *)t->st->data + t->offset * (int64_t)sp_dtype_size(t->dtype);
}
static inline void *sp_data_rw(sp_tensor *t) {
    sp_storage_touch(t->st);
    return (char *)t->st->data + t->offset * (int64_t)sp_dtype_size(t->dtype);
}
/* A writable address handed to host code (sp_tensor_data, sp_tensor_device_region): the host
 * may write through it at any time, so the storage is marked exposed for good. */
static inline void *sp_data_exposed(const sp_tensor *t) {
    atomic_store_explicit(&t->st->exposed, 1, memory_order_relaxed);
    sp_storage_touch(t->st);
    return (char *)t->st->data + t->offset * (int64_t)sp_dtype_size(t->dtype);
}
/* Drop whatever conv_dnnl.c keeps derived from s's bytes (storage.c, when s dies). */
void sp_cpu_wcache_drop(sp_storage *s);
/* sp_tensor_data's checks (host memory) for the engine's own readers and writers (engine/io):
 * marks the storage dirty, not exposed, since the address does not outlive the call. */
void *sp_host_data(const sp_tensor *t);
/* A const tensor gives a const pointer, so a write through it does not compile (-Werror);
 * a non-const one marks its storage dirty (above). */
#define SP_DATA(t) _Generic((t), const sp_tensor *: sp_data_ro, default: sp_data_rw)(t)
#define SP_DEV(t) ((t)->st->dev)

/* A contiguous host tensor with t's values: a view of t when t is contiguous host
 * memory, else a copy (through the device's explicit copy when t is on a device). */
sp_status sp_tensor_host_contiguous(sp_tensor **out, const sp_tensor *t);
/* Channels-last operands (sp_tensor_is_channels_last) for a kernel that takes NCHW: sp_cl_in
 * points *t at a contiguous copy when it is not contiguous; sp_cl_out points *t at a
 * contiguous temporary that sp_cl_done copies back into the original (when st is SP_OK)
 * before freeing every temporary. sp_cl_done returns st, or the copy's error. */
enum { SP_CL_MAX = 6 };
typedef struct { sp_tensor *tmp[SP_CL_MAX], *dst[SP_CL_MAX]; int n; } sp_cl_ctx;
sp_status sp_cl_in(sp_cl_ctx *k, const sp_tensor **t);
sp_status sp_cl_out(sp_cl_ctx *k, sp_tensor **t);
sp_status sp_cl_done(sp_cl_ctx *k, sp_status st);
/* The convolutions' NCHW-copy runs: fn (a kernel or public entry with the conv signature)
 * on NCHW copies of the channels-last operands, the result copied back into a channels-last
 * out / grad_x. For the places that cannot take channels-last in place: engine/ops on
 * devices without such kernels, engine/cpu where oneDNN does not run the layer. */
#define SP_CONV_GEOM_ARGS int sh, int sw, int pt, int pb, int pl, int pr, int dh, int dw, int groups
typedef sp_status (*sp_conv_fwd_fn)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                    SP_CONV_GEOM_ARGS);
typedef sp_status (*sp_conv_bn_fwd_fn)(sp_tensor *out, const sp_tensor *x, const sp_tensor *w, const sp_tensor *bias,
                                       const sp_tensor *gamma, const sp_tensor *beta, const sp_tensor *mean,
                                       const sp_tensor *var, double eps, const sp_tensor *residual, int relu,
                                       SP_CONV_GEOM_ARGS);
typedef sp_status (*sp_conv_bwd_fn)(sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                                    const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w,
                                    SP_CONV_GEOM_ARGS);
sp_status sp_cl_conv_forward(sp_conv_fwd_fn fn, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                             const sp_tensor *bias, SP_CONV_GEOM_ARGS);
sp_status sp_cl_conv_bn_forward(sp_conv_bn_fwd_fn fn, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                                const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta,
                                const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual,
                                int relu, SP_CONV_GEOM_ARGS);
sp_status sp_cl_conv_backward(sp_conv_bwd_fn fn, sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                              const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, SP_CONV_GEOM_ARGS);
/* 1 when any of the n tensors (NULLs skipped) is neither contiguous nor absent */
static inline int sp_cl_any(int n, const sp_tensor *const *ts) {
    for (int i = 0; i < n; i++)
        if (ts[i] && !sp_tensor_is_contiguous(ts[i])) return 1;
    return 0;
}
#define SP_CL_ANY(...) sp_cl_any(sizeof((const sp_tensor *const[]){__VA_ARGS__}) / sizeof(const sp_tensor *), \
                                 (const sp_tensor *const[]){__VA_ARGS__})
/* 1 when every one of the n tensors (NULLs skipped) is channels-last */
static inline int sp_cl_all(int n, const sp_tensor *const *ts) {
    for (int i = 0; i < n; i++)
        if (ts[i] && !sp_tensor_is_channels_last(ts[i])) return 0;
    return 1;
}
#define SP_CL_BOTH(...) sp_cl_all(sizeof((const sp_tensor *const[]){__VA_ARGS__}) / sizeof(const sp_tensor *), \
                                  (const sp_tensor *const[]){__VA_ARGS__})
/* 1 when the bytes of a and b overlap (each from its data pointer, numel x its dtype's size;
 * contiguous or channels-last tensors span exactly that) */
static inline int sp_bytes_overlap(const sp_tensor *a, const sp_tensor *b) {
    const char *p = sp_data_ro(a), *q = sp_data_ro(b);
    size_t na = sp_dtype_size(a->dtype) * (size_t)sp_tensor_numel(a);
    size_t nb = sp_dtype_size(b->dtype) * (size_t)sp_tensor_numel(b);
    return p < q + nb && q < p + na;
}
/* Error unless t lives in host-addressable memory (the data pipeline and the file writers
 * run on the host; a device tensor is copied out first, explicitly). */
sp_status sp_require_host(const char *op, const sp_tensor *t, const char *what);
/* Error unless every non-NULL tensor is on d's device (names the op and the tensor). */
sp_status sp_check_same_device(const char *op, int n, const sp_tensor *const *ts, const char *const *names);

/* Element load/store through double (floats, bool, ints up to 2^53) and int64. */
double sp_load_f64(int dtype, const void *p);
void sp_store_f64(int dtype, void *p, double v);
int64_t sp_load_i64(int dtype, const void *p);
void sp_store_i64(int dtype, void *p, int64_t v);
int sp_dtype_valid(int dtype);
int sp_dtype_is_int(int dtype); /* integer or bool */

/* Checked arithmetic: return 0 on overflow. */
static inline int sp_mul_ok(int64_t a, int64_t b, int64_t *r) {
    return !__builtin_mul_overflow(a, b, r) && *r >= 0;
}

/* Validate a shape and compute its element count (0 on error with message set). */
sp_status sp_shape_numel(int ndim, const int64_t *shape, int64_t *numel);

/* Pointer to the element at flat row-major position i of t (any strides). */
static inline const char *sp_elem_ptr_ro(const sp_tensor *t, int64_t i) {
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->strides[d];
        i /= n;
    }
    return (const char *)t->st->data + off * (int64_t)sp_dtype_size(t->dtype);
}
static inline char *sp_elem_ptr_rw(sp_tensor *t, int64_t i) {
    sp_storage_touch(t->st);
    return (char *)sp_elem_ptr_ro(t, i);
}
/* const tensors give const pointers; a non-const one is marked dirty (SP_DATA) */
#define sp_elem_ptr(t, i) _Generic((t), const sp_tensor *: sp_elem_ptr_ro, default: sp_elem_ptr_rw)((t), (i))

/* Row-major traversal of up to three same-shaped strided operands. */
typedef struct {
    int ndim;
    int64_t shape[SP_MAX_DIMS];
    int64_t idx[SP_MAX_DIMS];
    int64_t strides[3][SP_MAX_DIMS]; /* bytes */
    char *ptr[3];
    int nops;
} sp_iter;

void sp_iter_init(sp_iter *it, int ndim, const int64_t *shape, int nops, char **base,
                  int64_t (*strides_bytes)[SP_MAX_DIMS]);
/* Advance to the next element; returns 0 after the last. */
static inline int sp_iter_next(sp_iter *it) {
    for (int d = it->ndim - 1; d >= 0; d--) {
        if (++it->idx[d] < it->shape[d]) {
            for (int k = 0; k < it->nops; k++) it->ptr[k] += it->strides[k][d];
            return 1;
        }
        it->idx[d] = 0;
        for (int k = 0; k < it->nops; k++) it->ptr[k] -= it->strides[k][d] * (it->shape[d] - 1);
    }
    return 0;
}

/* The dtype table (engine/core/dtype.c), indexed by sp_dtype. NULL torch names: no
 * torch storage type for that dtype. */
typedef struct sp_dtype_info {
    const char *name;          /* spore / numpy name: "float32" */
    size_t size;               /* bytes per element */
    int is_float;
    const char *ms;            /* MindSpore .ckpt tensor_type: "Float32" */
    const char *st;            /* safetensors dtype: "F32" */
    const char *torch;         /* torch dtype: "torch.float32" */
    const char *torch_storage; /* torch pickle storage class: "FloatStorage" */
    const char *ctype;         /* C element type for the FFI: "float" */
    const char *aliases;       /* extra names accepted by sp_dtype_from_name, space-separated */
} sp_dtype_info;
extern const sp_dtype_info sp_dtypes[SP_NUM_DTYPES];

/* Configuration (sp_config_set_*; engine/core/config.c, engine/io/ckpt_read.c). */
extern atomic_int sp_cfg_nn_omp;

#endif
