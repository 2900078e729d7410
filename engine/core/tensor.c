/* tensor.c — tensor handles: creation, accessors, views, copies, element access. */
#include "core/internal.h"
#include "core/device.h"
#include "core/kernels.h"
#include "spore_engine_ext.h"

#include <stdlib.h>
#include <string.h>

sp_storage *sp_storage_new(sp_device *dev, size_t nbytes, int zero);
sp_storage *sp_storage_adopt(void *data, size_t nbytes, sp_release_fn release, void *ctx);
void sp_storage_retain(sp_storage *s);
void sp_storage_release(sp_storage *s);

sp_status sp_shape_numel(int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > SP_MAX_DIMS)
        return sp_error(SP_EINVAL, "tensor rank %d is out of range (expected 0..%d)", ndim, SP_MAX_DIMS);
    if (ndim > 0 && !shape) return sp_error(SP_EINVAL, "shape pointer is NULL for rank %d", ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return sp_error(SP_EINVAL, "dimension %d is negative (%lld)", i, (long long)shape[i]);
        if (!sp_mul_ok(n, shape[i], &n))
            return sp_error(SP_ENOMEM, "shape overflows: product of dimensions exceeds 2^63");
    }
    *numel = n;
    return SP_OK;
}

/* Unsigned products: the nonzero dimensions of an EMPTY tensor may multiply past 2^63
 * (a hostile checkpoint shape [0, 2^59, 440] is one); its strides address nothing, so
 * wrapping there is harmless, and defined (signed overflow is not). Every other shape's
 * products fit: sp_shape_numel checked them. */
static void set_contiguous_strides(sp_tensor *t) {
    uint64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = (int64_t)s;
        s *= (uint64_t)(t->shape[i] ? t->shape[i] : 1);
    }
}

static sp_status make(sp_tensor **out, int dtype, int ndim, const int64_t *shape, int zero, int device) {
    if (!out) return sp_error(SP_EINVAL, "output pointer is NULL");
    *out = NULL;
    sp_device *dev = sp_device_get(device);
    if (!dev) return SP_EDEVICE;
    if (!sp_dtype_valid(dtype)) return sp_error(SP_EINVAL, "unknown dtype code %d", dtype);
    int64_t n, bytes;
    sp_status st = sp_shape_numel(ndim, shape, &n);
    if (st) return st;
    if (!sp_mul_ok(n, (int64_t)sp_dtype_size(dtype), &bytes))
        return sp_error(SP_ENOMEM, "tensor of %lld elements is too large", (long long)n);
    sp_tensor *t = calloc(1, sizeof *t);
    if (!t) return sp_error(SP_ENOMEM, "out of memory allocating a tensor handle");
    t->st = sp_storage_new(dev, (size_t)bytes, zero);
    if (!t->st) {
        free(t);
        return sp_error(SP_ENOMEM, "out of memory allocating %lld bytes for a %s tensor on %s", (long long)bytes,
                        sp_dtype_name(dtype), dev->name);
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    set_contiguous_strides(t);
    *out = t;
    return SP_OK;
}

sp_status sp_tensor_new(sp_tensor **out, int dtype, int ndim, const int64_t *shape) {
    return make(out, dtype, ndim, shape, 1, SP_DEVICE_CPU);
}

sp_status sp_tensor_empty(sp_tensor **out, int dtype, int ndim, const int64_t *shape) {
    return make(out, dtype, ndim, shape, 0, SP_DEVICE_CPU);
}

sp_status sp_tensor_new_on(sp_tensor **out, int dtype, int ndim, const int64_t *shape, int device) {
    return make(out, dtype, ndim, shape, 1, device);
}

sp_status sp_tensor_empty_on(sp_tensor **out, int dtype, int ndim, const int64_t *shape, int device) {
    return make(out, dtype, ndim, shape, 0, device);
}

static sp_status refuse_device_pointer(const void *p, const char *what) {
    sp_device *d = sp_device_owning(p);
    if (d)
        return sp_error(SP_EINVAL, "%s: the pointer is into %s device memory, not host memory (copy through "
                        "sp_tensor_read/sp_tensor_to_device)", what, d->name);
    return SP_OK;
}

sp_status sp_tensor_from_data(sp_tensor **out, int dtype, int ndim, const int64_t *shape, const void *data,
                              size_t nbytes) {
    if (out) *out = NULL;
    sp_status st = refuse_device_pointer(data, "from_data");
    if (st) return st;
    st = make(out, dtype, ndim, shape, 0, SP_DEVICE_CPU);
    if (st) return st;
    if (nbytes != (*out)->st->nbytes) {
        size_t want = (*out)->st->nbytes;
        sp_tensor_free(*out);
        *out = NULL;
        return sp_error(SP_EINVAL, "data has %zu bytes, expected %zu for this shape and dtype", nbytes, want);
    }
    if (nbytes) {
        if (!data) { sp_tensor_free(*out); *out = NULL; return sp_error(SP_EINVAL, "data pointer is NULL"); }
        memcpy((*out)->st->data, data, nbytes);
    }
    return SP_OK;
}

sp_status sp_tensor_adopt(sp_tensor **out, int dtype, int ndim, const int64_t *shape, void *data, size_t nbytes,
                          sp_release_fn release, void *ctx) {
    if (!out) return sp_error(SP_EINVAL, "output pointer is NULL");
    *out = NULL;
    if (!sp_dtype_valid(dtype)) return sp_error(SP_EINVAL, "unknown dtype code %d", dtype);
    int64_t n, bytes;
    sp_status st = refuse_device_pointer(data, "adopt");
    if (st) return st;
    st = sp_shape_numel(ndim, shape, &n);
    if (st) return st;
    if (!sp_mul_ok(n, (int64_t)sp_dtype_size(dtype), &bytes) || (size_t)bytes != nbytes)
        return sp_error(SP_EINVAL, "adopted buffer has %zu bytes, expected %lld", nbytes, (long long)bytes);
    sp_tensor *t = calloc(1, sizeof *t);
    if (!t) return sp_error(SP_ENOMEM, "out of memory allocating a tensor handle");
    t->st = sp_storage_adopt(data, nbytes, release, ctx);
    if (!t->st) { free(t); return sp_error(SP_ENOMEM, "out of memory allocating a storage"); }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    set_contiguous_strides(t);
    *out = t;
    return SP_OK;
}

sp_status sp_tensor_revoke(sp_tensor *t) {
    if (!t) return sp_error(SP_EINVAL, "revoke: tensor is NULL");
    if (t->st->owned) return sp_error(SP_EINVAL, "revoke: the tensor's memory belongs to the engine, not to a lender");
    t->st->dev = &sp_revoked_device;
    t->st->data = NULL;
    return SP_OK;
}

void sp_tensor_free(sp_tensor *t) {
    if (!t) return;
    sp_storage_release(t->st);
    free(t);
}

/* ---- accessors ----------------------------------------------------------- */

int sp_tensor_dtype(const sp_tensor *t) { return t ? t->dtype : -1; }
int sp_tensor_ndim(const sp_tensor *t) { return t ? t->ndim : -1; }
int64_t sp_tensor_dim(const sp_tensor *t, int i) {
    if (!t) return -1;
    if (i < 0) i += t->ndim;
    return (i >= 0 && i < t->ndim) ? t->shape[i] : -1;
}
int64_t sp_tensor_stride(const sp_tensor *t, int i) {
    if (!t) return 0;
    if (i < 0) i += t->ndim;
    return (i >= 0 && i < t->ndim) ? t->strides[i] : 0;
}
int64_t sp_tensor_offset(const sp_tensor *t) { return t ? t->offset : 0; }
int64_t sp_tensor_numel(const sp_tensor *t) {
    if (!t) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}
size_t sp_tensor_nbytes(const sp_tensor *t) { return t ? (size_t)sp_tensor_numel(t) * sp_dtype_size(t->dtype) : 0; }
int sp_tensor_is_contiguous(const sp_tensor *t) {
    if (!t) return 0;
    uint64_t s = 1; /* unsigned: see set_contiguous_strides */
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && (uint64_t)t->strides[i] != s) return 0;
        s *= (uint64_t)t->shape[i];
    }
    return 1;
}
int sp_tensor_is_channels_last(const sp_tensor *t) {
    if (!t || t->ndim != 4) return 0;
    const int64_t *d = t->shape, *s = t->strides;
    /* NHWC order: C innermost, then W, H, N */
    uint64_t want[4] = {(uint64_t)(d[1] * d[2] * d[3]), 1, (uint64_t)(d[1] * d[3]), (uint64_t)d[1]};
    for (int i = 0; i < 4; i++)
        if (d[i] != 1 && (uint64_t)s[i] != want[i]) return 0;
    return 1;
}

sp_status sp_tensor_empty_channels_last_on(sp_tensor **out, int dtype, const int64_t *shape, int device) {
    if (out) *out = NULL;
    if (!out || !shape) return sp_error(SP_EINVAL, "empty_channels_last: NULL argument");
    int64_t nhwc[4] = {shape[0], shape[2], shape[3], shape[1]};
    sp_tensor *t = NULL;
    sp_status st = make(&t, dtype, 4, nhwc, 0, device);
    if (st) return st;
    t->shape[0] = shape[0], t->shape[1] = shape[1], t->shape[2] = shape[2], t->shape[3] = shape[3];
    t->strides[0] = shape[1] * shape[2] * shape[3], t->strides[1] = 1, t->strides[2] = shape[1] * shape[3],
    t->strides[3] = shape[1];
    *out = t;
    return SP_OK;
}

/* ---- channels-last operands for kernels that take NCHW (internal.h) ---- */
sp_status sp_cl_in(sp_cl_ctx *k, const sp_tensor **t) {
    if (!*t || sp_tensor_is_contiguous(*t)) return SP_OK;
    if (k->n == SP_CL_MAX) return sp_error(SP_EINVAL, "channels-last: too many operands");
    sp_tensor *c = NULL;
    sp_status st = sp_tensor_clone(&c, *t, (*t)->dtype);
    if (st) return st;
    k->tmp[k->n] = c, k->dst[k->n] = NULL, k->n++;
    *t = c;
    return SP_OK;
}
sp_status sp_cl_out(sp_cl_ctx *k, sp_tensor **t) {
    if (!*t || sp_tensor_is_contiguous(*t)) return SP_OK;
    if (k->n == SP_CL_MAX) return sp_error(SP_EINVAL, "channels-last: too many operands");
    sp_tensor *c = NULL;
    sp_status st = sp_tensor_empty_on(&c, (*t)->dtype, (*t)->ndim, (*t)->shape, SP_DEV(*t)->code);
    if (st) return st;
    k->tmp[k->n] = c, k->dst[k->n] = *t, k->n++;
    *t = c;
    return SP_OK;
}
sp_status sp_cl_done(sp_cl_ctx *k, sp_status st) {
    for (int i = 0; i < k->n; i++) {
        if (!st && k->dst[i]) st = sp_tensor_copy(k->dst[i], k->tmp[i]);
        sp_tensor_free(k->tmp[i]);
    }
    k->n = 0;
    return st;
}

#define GEOM sh, sw, pt, pb, pl, pr, dh, dw, groups
sp_status sp_cl_conv_forward(sp_conv_fwd_fn fn, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                             const sp_tensor *bias, SP_CONV_GEOM_ARGS) {
    sp_cl_ctx k = {0};
    sp_status st = sp_cl_in(&k, &x);
    if (!st) st = sp_cl_out(&k, &out);
    if (!st) st = fn(out, x, w, bias, GEOM);
    return sp_cl_done(&k, st);
}
sp_status sp_cl_conv_bn_forward(sp_conv_bn_fwd_fn fn, sp_tensor *out, const sp_tensor *x, const sp_tensor *w,
                                const sp_tensor *bias, const sp_tensor *gamma, const sp_tensor *beta,
                                const sp_tensor *mean, const sp_tensor *var, double eps, const sp_tensor *residual,
                                int relu, SP_CONV_GEOM_ARGS) {
    sp_cl_ctx k = {0};
    sp_status st = sp_cl_in(&k, &x);
    if (!st) st = sp_cl_in(&k, &residual);
    if (!st) st = sp_cl_out(&k, &out);
    if (!st) st = fn(out, x, w, bias, gamma, beta, mean, var, eps, residual, relu, GEOM);
    return sp_cl_done(&k, st);
}
sp_status sp_cl_conv_backward(sp_conv_bwd_fn fn, sp_tensor *grad_x, sp_tensor *grad_w, sp_tensor *grad_b,
                              const sp_tensor *grad_out, const sp_tensor *x, const sp_tensor *w, SP_CONV_GEOM_ARGS) {
    sp_cl_ctx k = {0};
    sp_status st = sp_cl_in(&k, &x);
    if (!st) st = sp_cl_in(&k, &grad_out);
    if (!st) st = sp_cl_out(&k, &grad_x);
    if (!st) st = fn(grad_x, grad_w, grad_b, grad_out, x, w, GEOM);
    return sp_cl_done(&k, st);
}
#undef GEOM

void *sp_host_data(const sp_tensor *t) {
    if (!t) { sp_error(SP_EINVAL, "tensor is NULL"); return NULL; }
    if (!SP_DEV(t)->host_visible) {
        sp_error(SP_EDEVICE, "tensor is on device %s, whose memory host code cannot address: copy it out "
                 "(sp_tensor_read, sp_tensor_to_device)", SP_DEV(t)->name);
        return NULL;
    }
    sp_storage_touch(t->st); /* the caller may write */
    return (char *)t->st->data + t->offset * (int64_t)sp_dtype_size(t->dtype);
}
void *sp_tensor_data(const sp_tensor *t) {
    void *p = sp_host_data(t);
    if (p) atomic_store_explicit(&t->st->exposed, 1, memory_order_relaxed); /* host code holds it from now on */
    return p;
}
int sp_tensor_device(const sp_tensor *t) { return t ? SP_DEV(t)->code : -1; }

#ifdef SP_HAVE_CUDA
#include "cuda/cuda_api.h"
#endif
sp_status sp_tensor_device_region(const sp_tensor *t, void **addr, int *device, void **stream) {
    if (!t || !addr || !device || !stream) return sp_error(SP_EINVAL, "sp_tensor_device_region: NULL argument");
    if (!sp_tensor_is_contiguous(t)) return sp_error(SP_EINVAL, "sp_tensor_device_region: the tensor is not contiguous");
    const sp_device *d = SP_DEV(t);
    *addr = sp_data_exposed(t);
    *device = d->code;
    *stream = NULL;
    if (d->type == SP_DEVICE_CUDA) {
#ifdef SP_HAVE_CUDA
        *stream = spc_stream(d->index);
        if (!*stream) return SP_EDEVICE;
#else
        return sp_error(SP_EDEVICE, "sp_tensor_device_region: a cuda tensor in a build without CUDA");
#endif
    }
    return SP_OK;
}
int sp_tensor_storage_refcount(const sp_tensor *t) { return t ? atomic_load(&t->st->refcount) : 0; }
int sp_tensor_shares_storage(const sp_tensor *a, const sp_tensor *b) { return a && b && a->st == b->st; }
int sp_tensor_shape(const sp_tensor *t, int64_t *shape) {
    if (!t) return -1;
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
    return t->ndim;
}

/* ---- views ------------------------------------------------------------- */

static sp_status new_view(sp_tensor **out, const sp_tensor *src) {
    if (!out) return sp_error(SP_EINVAL, "output pointer is NULL");
    *out = NULL;
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    sp_tensor *t = malloc(sizeof *t);
    if (!t) return sp_error(SP_ENOMEM, "out of memory allocating a tensor handle");
    *t = *src;
    sp_storage_retain(t->st);
    *out = t;
    return SP_OK;
}

sp_status sp_tensor_alias(sp_tensor **out, const sp_tensor *src) { return new_view(out, src); }

sp_status sp_tensor_view(sp_tensor **out, const sp_tensor *src, int ndim, const int64_t *shape,
                         const int64_t *strides, int64_t offset) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    int64_t n;
    sp_status st = sp_shape_numel(ndim, shape, &n);
    if (st) return st;
    if (!strides && ndim > 0) return sp_error(SP_EINVAL, "view strides pointer is NULL");
    /* bounds: the smallest and largest element offsets must lie in the storage */
    int64_t cap = (int64_t)(src->st->nbytes / sp_dtype_size(src->dtype));
    if (offset < 0) return sp_error(SP_EINVAL, "view offset %lld is negative", (long long)offset);
    if (n > 0) {
        int64_t lo = offset, hi = offset;
        for (int i = 0; i < ndim; i++) {
            int64_t span;
            if (!sp_mul_ok(shape[i] - 1, strides[i] < 0 ? -strides[i] : strides[i], &span))
                return sp_error(SP_EINVAL, "view extent overflows");
            if (strides[i] < 0) lo -= span; else hi += span;
        }
        if (lo < 0 || hi >= cap)
            return sp_error(SP_EINVAL, "view [%lld, %lld] exceeds the storage of %lld elements", (long long)lo,
                            (long long)hi, (long long)cap);
    }
    st = new_view(out, src);
    if (st) return st;
    (*out)->ndim = ndim;
    for (int i = 0; i < ndim; i++) { (*out)->shape[i] = shape[i]; (*out)->strides[i] = strides[i]; }
    (*out)->offset = offset;
    return SP_OK;
}

sp_status sp_tensor_reshape(sp_tensor **out, const sp_tensor *src, int ndim, const int64_t *shape) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    if (ndim < 0 || ndim > SP_MAX_DIMS) return sp_error(SP_EINVAL, "reshape rank %d is out of range", ndim);
    int64_t sh[SP_MAX_DIMS], known = 1, total = sp_tensor_numel(src);
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (sh[i] == -1) {
            if (infer >= 0) return sp_error(SP_EINVAL, "reshape: only one dimension may be -1");
            infer = i;
        } else if (sh[i] < 0) {
            return sp_error(SP_EINVAL, "reshape: dimension %d is negative (%lld)", i, (long long)sh[i]);
        } else if (!sp_mul_ok(known, sh[i], &known)) {
            return sp_error(SP_EINVAL, "reshape: shape overflows");
        }
    }
    if (infer >= 0) {
        if (known == 0 || total % known)
            return sp_error(SP_EINVAL, "reshape: cannot infer dimension %d for %lld elements", infer,
                            (long long)total);
        sh[infer] = total / known;
        known = total;
    }
    if (known != total)
        return sp_error(SP_EINVAL, "reshape: shape has %lld elements, tensor has %lld", (long long)known,
                        (long long)total);
    if (!sp_tensor_is_contiguous(src))
        return sp_error(SP_EINVAL, "reshape: tensor is not contiguous (call contiguous() first)");
    sp_status st = new_view(out, src);
    if (st) return st;
    (*out)->ndim = ndim;
    for (int i = 0; i < ndim; i++) (*out)->shape[i] = sh[i];
    set_contiguous_strides(*out);
    return SP_OK;
}

static int norm_dim(const sp_tensor *t, int d, int *out) {
    if (d < 0) d += t->ndim;
    if (d < 0 || d >= t->ndim) return 0;
    *out = d;
    return 1;
}

sp_status sp_tensor_transpose(sp_tensor **out, const sp_tensor *src, int d0, int d1) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    int a, b;
    if (!norm_dim(src, d0, &a) || !norm_dim(src, d1, &b))
        return sp_error(SP_EINVAL, "transpose: dimensions %d, %d out of range for rank %d", d0, d1, src->ndim);
    sp_status st = new_view(out, src);
    if (st) return st;
    int64_t s = (*out)->shape[a]; (*out)->shape[a] = (*out)->shape[b]; (*out)->shape[b] = s;
    s = (*out)->strides[a]; (*out)->strides[a] = (*out)->strides[b]; (*out)->strides[b] = s;
    return SP_OK;
}

sp_status sp_tensor_select(sp_tensor **out, const sp_tensor *src, int dim, int64_t index) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    int d;
    if (!norm_dim(src, dim, &d)) return sp_error(SP_EINVAL, "select: dimension %d out of range for rank %d", dim, src->ndim);
    if (index < 0 || index >= src->shape[d])
        return sp_error(SP_EINVAL, "index %lld is out of range for dimension %d of size %lld", (long long)index + 1,
                        d + 1, (long long)src->shape[d]);
    sp_status st = new_view(out, src);
    if (st) return st;
    sp_tensor *t = *out;
    t->offset += index * t->strides[d];
    for (int i = d; i < t->ndim - 1; i++) { t->shape[i] = t->shape[i + 1]; t->strides[i] = t->strides[i + 1]; }
    t->ndim--;
    return SP_OK;
}

sp_status sp_tensor_narrow(sp_tensor **out, const sp_tensor *src, int dim, int64_t start, int64_t length) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    int d;
    if (!norm_dim(src, dim, &d)) return sp_error(SP_EINVAL, "narrow: dimension %d out of range for rank %d", dim, src->ndim);
    if (start < 0 || length < 0 || start > src->shape[d] || length > src->shape[d] - start)
        return sp_error(SP_EINVAL, "narrow: [%lld, %lld) is out of range for dimension %d of size %lld",
                        (long long)start, (long long)(start + length), d, (long long)src->shape[d]);
    sp_status st = new_view(out, src);
    if (st) return st;
    (*out)->offset += start * (*out)->strides[d];
    (*out)->shape[d] = length;
    return SP_OK;
}

sp_status sp_tensor_contiguous(sp_tensor **out, const sp_tensor *src) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    if (sp_tensor_is_contiguous(src)) return new_view(out, src);
    return sp_tensor_clone(out, src, src->dtype);
}

sp_status sp_tensor_clone(sp_tensor **out, const sp_tensor *src, int dtype) {
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    sp_status st = sp_tensor_empty_on(out, dtype, src->ndim, src->shape, SP_DEV(src)->code);
    if (st) return st;
    st = sp_tensor_copy(*out, src);
    if (st) { sp_tensor_free(*out); *out = NULL; }
    return st;
}

/* ---- copy / convert ------------------------------------------------------ */

void sp_iter_init(sp_iter *it, int ndim, const int64_t *shape, int nops, char **base,
                  int64_t (*strides_bytes)[SP_MAX_DIMS]) {
    it->ndim = ndim;
    it->nops = nops;
    for (int d = 0; d < ndim; d++) { it->shape[d] = shape[d]; it->idx[d] = 0; }
    for (int k = 0; k < nops; k++) {
        it->ptr[k] = base[k];
        for (int d = 0; d < ndim; d++) it->strides[k][d] = strides_bytes[k][d];
    }
}

/* Byte range [lo, hi) that t's elements span in its storage. */
static void byte_span(const sp_tensor *t, int64_t *lo, int64_t *hi) {
    int64_t sz = (int64_t)sp_dtype_size(t->dtype), a = t->offset, b = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        int64_t ext = (t->shape[d] - 1) * t->strides[d];
        if (ext < 0) a += ext; else b += ext;
    }
    *lo = a * sz;
    *hi = (b + 1) * sz;
}

static int same_layout(const sp_tensor *a, const sp_tensor *b) {
    if (a->dtype != b->dtype || a->offset != b->offset || a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d] || (a->shape[d] > 1 && a->strides[d] != b->strides[d])) return 0;
    return 1;
}

static sp_status copy_checks(const sp_tensor *dst, const sp_tensor *src) {
    if (!dst || !src) return sp_error(SP_EINVAL, "copy: tensor is NULL");
    int64_t n = sp_tensor_numel(dst);
    if (n != sp_tensor_numel(src))
        return sp_error(SP_EINVAL, "copy: destination has %lld elements, source has %lld", (long long)n,
                        (long long)sp_tensor_numel(src));
    int same_shape = dst->ndim == src->ndim;
    for (int i = 0; same_shape && i < dst->ndim; i++) same_shape = dst->shape[i] == src->shape[i];
    if (!same_shape && !(sp_tensor_is_contiguous(dst) && sp_tensor_is_contiguous(src)))
        return sp_error(SP_EINVAL, "copy: shapes differ and a tensor is not contiguous");
    return SP_OK;
}

/* dst <- src where src is a contiguous host tensor and dst is on a device: through a
 * contiguous staging tensor of dst's dtype on dst's device when dst is strided or
 * converts. */
static sp_status copy_from_host(sp_tensor *dst, const sp_tensor *hsrc) {
    sp_device *d = SP_DEV(dst);
    if (dst->dtype == hsrc->dtype && sp_tensor_is_contiguous(dst))
        return d->from_host(d, SP_DATA(dst), SP_DATA(hsrc), sp_tensor_nbytes(dst));
    sp_tensor *conv = NULL, *stage = NULL;
    sp_status st = SP_OK;
    const sp_tensor *h = hsrc;
    if (dst->dtype != hsrc->dtype) {
        st = sp_tensor_empty(&conv, dst->dtype, hsrc->ndim, hsrc->shape);
        if (!st) st = sp_cpu_kernels.copy(conv, hsrc);
        h = conv;
    }
    if (!st) st = sp_tensor_empty_on(&stage, dst->dtype, dst->ndim, dst->shape, d->code);
    if (!st) st = d->from_host(d, SP_DATA(stage), SP_DATA(h), sp_tensor_nbytes(stage));
    if (!st) st = d->k->copy(dst, stage);
    sp_tensor_free(conv);
    sp_tensor_free(stage);
    return st;
}

sp_status sp_tensor_host_contiguous(sp_tensor **out, const sp_tensor *t) {
    if (!out) return sp_error(SP_EINVAL, "output pointer is NULL");
    *out = NULL;
    if (!t) return sp_error(SP_EINVAL, "tensor is NULL");
    sp_device *d = SP_DEV(t);
    if (d->host_visible) return sp_tensor_contiguous(out, t);
    sp_tensor *c = NULL;
    sp_status st = sp_tensor_contiguous(&c, t); /* on the device */
    if (st) return st;
    st = sp_tensor_empty(out, t->dtype, t->ndim, t->shape);
    if (!st) st = d->to_host(d, SP_DATA(*out), SP_DATA(c), sp_tensor_nbytes(c));
    sp_tensor_free(c);
    if (st) { sp_tensor_free(*out); *out = NULL; }
    return st;
}

sp_status sp_tensor_copy(sp_tensor *dst, const sp_tensor *src) {
    sp_status st = copy_checks(dst, src);
    if (st) return st;
    if (sp_tensor_numel(dst) == 0) return SP_OK;
    sp_device *dd = SP_DEV(dst), *sd = SP_DEV(src);
    if (dd == &sp_revoked_device || sd == &sp_revoked_device) return sp_revoked_device.to_host(&sp_revoked_device, NULL, NULL, 0);
    if (dd != sd) {
        sp_tensor *h = NULL;
        st = sp_tensor_host_contiguous(&h, src);
        if (!st) st = dd->host_visible ? dd->k->copy(dst, h) : copy_from_host(dst, h);
        sp_tensor_free(h);
        return st;
    }
    /* same storage: overlapping element ranges are read through a temporary (a:copy_(a:t())) */
    if (dst->st == src->st && !same_layout(dst, src)) {
        int64_t a0, a1, b0, b1;
        byte_span(dst, &a0, &a1);
        byte_span(src, &b0, &b1);
        int contiguous_same_type = dst->dtype == src->dtype && sp_tensor_is_contiguous(dst) && sp_tensor_is_contiguous(src);
        if (a0 < b1 && b0 < a1 && !contiguous_same_type) { /* contiguous same-dtype copies are a memmove */
            sp_tensor *tmp = NULL;
            st = sp_tensor_clone(&tmp, src, src->dtype);
            if (!st) st = dd->k->copy(dst, tmp);
            sp_tensor_free(tmp);
            return st;
        }
    }
    return dd->k->copy(dst, src);
}

sp_status sp_tensor_to_device(sp_tensor **out, const sp_tensor *src, int device) {
    if (!out) return sp_error(SP_EINVAL, "output pointer is NULL");
    *out = NULL;
    if (!src) return sp_error(SP_EINVAL, "source tensor is NULL");
    sp_device *d = sp_device_get(device);
    if (!d) return SP_EDEVICE;
    if (d == SP_DEV(src)) return sp_tensor_alias(out, src);
    sp_status st = sp_tensor_empty_on(out, src->dtype, src->ndim, src->shape, device);
    if (!st) st = sp_tensor_copy(*out, src);
    if (st) { sp_tensor_free(*out); *out = NULL; }
    return st;
}

sp_status sp_tensor_read(const sp_tensor *t, void *dst, size_t nbytes) {
    if (!t || (!dst && nbytes)) return sp_error(SP_EINVAL, "read: NULL argument");
    if (nbytes != sp_tensor_nbytes(t))
        return sp_error(SP_EINVAL, "read: buffer has %zu bytes, tensor has %zu", nbytes, sp_tensor_nbytes(t));
    sp_status st = refuse_device_pointer(dst, "read");
    if (st || !nbytes) return st;
    sp_tensor *h = NULL;
    st = sp_tensor_host_contiguous(&h, t);
    if (!st) memcpy(dst, SP_DATA(h), nbytes);
    sp_tensor_free(h);
    return st;
}

sp_status sp_tensor_write(sp_tensor *t, const void *src, size_t nbytes) {
    if (!t || (!src && nbytes)) return sp_error(SP_EINVAL, "write: NULL argument");
    if (nbytes != sp_tensor_nbytes(t))
        return sp_error(SP_EINVAL, "write: buffer has %zu bytes, tensor has %zu", nbytes, sp_tensor_nbytes(t));
    sp_status st = refuse_device_pointer(src, "write");
    if (st || !nbytes) return st;
    sp_tensor *h = NULL;
    st = sp_tensor_adopt(&h, t->dtype, t->ndim, t->shape, (void *)src, nbytes, NULL, NULL);
    if (!st) st = sp_tensor_copy(t, h);
    sp_tensor_free(h);
    return st;
}

sp_status sp_require_host(const char *op, const sp_tensor *t, const char *what) {
    if (t && !SP_DEV(t)->host_visible)
        return sp_error(SP_EDEVICE, "%s: %s is on device %s; this op runs on host tensors (copy it with to(\"cpu\"))",
                        op, what, SP_DEV(t)->name);
    return SP_OK;
}

sp_status sp_check_same_device(const char *op, int n, const sp_tensor *const *ts, const char *const *names) {
    const sp_tensor *first = NULL;
    int fi = 0;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) continue;
        if (!first) { first = ts[i]; fi = i; continue; }
        if (SP_DEV(ts[i]) != SP_DEV(first))
            return sp_error(SP_EINVAL, "%s: %s is on %s but %s is on %s (move it with to())", op, names[i],
                            SP_DEV(ts[i])->name, names[fi], SP_DEV(first)->name);
    }
    return SP_OK;
}

/* ---- element access: through the device's explicit copies ---------------- */

static sp_status elem_at(const sp_tensor *t, const int64_t *index, char **p) {
    if (!t) return sp_error(SP_EINVAL, "tensor is NULL");
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d])
            return sp_error(SP_EINVAL, "index %lld is out of range for dimension %d of size %lld (0-based)",
                            (long long)index[d], d, (long long)t->shape[d]);
        off += index[d] * t->strides[d];
    }
    *p = (char *)t->st->data + off * (int64_t)sp_dtype_size(t->dtype);
    return SP_OK;
}

static sp_status load_elem(const sp_tensor *t, const int64_t *index, char buf[8]) {
    char *p;
    sp_status st = elem_at(t, index, &p);
    if (st) return st;
    sp_device *d = SP_DEV(t);
    return d->to_host(d, buf, p, sp_dtype_size(t->dtype));
}

sp_status sp_tensor_get(const sp_tensor *t, const int64_t *index, double *value) {
    char buf[8];
    sp_status st = load_elem(t, index, buf);
    if (!st) *value = sp_load_f64(t->dtype, buf);
    return st;
}

sp_status sp_tensor_get_i64(const sp_tensor *t, const int64_t *index, int64_t *value) {
    char buf[8];
    sp_status st = load_elem(t, index, buf);
    if (!st) *value = sp_load_i64(t->dtype, buf);
    return st;
}

sp_status sp_tensor_set(sp_tensor *t, const int64_t *index, double value) {
    char *p, buf[8];
    sp_status st = elem_at(t, index, &p);
    if (st) return st;
    sp_storage_touch(t->st); /* elem_at's address is written below */
    sp_store_f64(t->dtype, buf, value);
    sp_device *d = SP_DEV(t);
    return d->from_host(d, p, buf, sp_dtype_size(t->dtype));
}

sp_status sp_tensor_to_doubles(const sp_tensor *t, double *buf, int64_t n) {
    if (!t || !buf) return sp_error(SP_EINVAL, "to_doubles: NULL argument");
    int64_t numel = sp_tensor_numel(t);
    if (n != numel) return sp_error(SP_EINVAL, "to_doubles: buffer holds %lld, tensor has %lld", (long long)n, (long long)numel);
    sp_tensor *h = NULL;
    sp_status st = sp_tensor_host_contiguous(&h, t);
    if (st) return st;
    const char *p = SP_DATA(h);
    size_t sz = sp_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++) buf[i] = sp_load_f64(t->dtype, p + (size_t)i * sz);
    sp_tensor_free(h);
    return SP_OK;
}

sp_status sp_tensor_from_doubles(sp_tensor *t, const double *buf, int64_t n) {
    if (!t || !buf) return sp_error(SP_EINVAL, "from_doubles: NULL argument");
    int64_t numel = sp_tensor_numel(t);
    if (n != numel) return sp_error(SP_EINVAL, "from_doubles: buffer holds %lld, tensor has %lld", (long long)n, (long long)numel);
    sp_tensor *h = NULL;
    sp_status st = sp_tensor_empty(&h, t->dtype, t->ndim, t->shape);
    if (st) return st;
    char *p = SP_DATA(h);
    size_t sz = sp_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++) sp_store_f64(t->dtype, p + (size_t)i * sz, buf[i]);
    st = sp_tensor_copy(t, h);
    sp_tensor_free(h);
    return st;
}

/* ---- resize ------------------------------------------------------------------ */

sp_status sp_tensor_resize(sp_tensor *t, int ndim, const int64_t *shape) {
    if (!t) return sp_error(SP_EINVAL, "resize: tensor is NULL");
    int64_t n, bytes;
    sp_status st = sp_shape_numel(ndim, shape, &n);
    if (st) return st;
    size_t sz = sp_dtype_size(t->dtype);
    if (!sp_mul_ok(n, (int64_t)sz, &bytes))
        return sp_error(SP_ENOMEM, "resize: tensor of %lld elements is too large", (long long)n);
    int refs = atomic_load(&t->st->refcount);
    if (refs > 1)
        return sp_error(SP_EINVAL, "resize: the tensor shares its storage with %d other handle%s (views); resize "
                        "a tensor that is the only handle on its storage, or clone it first", refs - 1,
                        refs == 2 ? "" : "s");
    int64_t old_n = sp_tensor_numel(t), keep = old_n < n ? old_n : n;
    size_t end = (size_t)t->offset * sz + (size_t)bytes;
    if (sp_tensor_is_contiguous(t) && end <= t->st->nbytes) {
        /* in place: the storage holds the new shape after the offset; the prefix stays */
        t->ndim = ndim;
        for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
        set_contiguous_strides(t);
        return SP_OK;
    }
    /* a new storage on t's device, keeping the first min(old, new) elements (row-major) */
    sp_device *d = SP_DEV(t);
    sp_tensor *nt = NULL, *src = NULL;
    st = sp_tensor_empty_on(&nt, t->dtype, ndim, shape, d->code);
    if (st) return st;
    if (keep > 0) {
        st = sp_tensor_contiguous(&src, t);
        if (!st) st = d->copy(d, nt->st->data, SP_DATA(src), (size_t)keep * sz);
        sp_tensor_free(src);
        if (st) { sp_tensor_free(nt); return st; }
    }
    sp_storage *old = t->st;
    t->st = nt->st;
    nt->st = old; /* released with nt */
    sp_tensor_free(nt);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    set_contiguous_strides(t);
    t->offset = 0;
    return SP_OK;
}
