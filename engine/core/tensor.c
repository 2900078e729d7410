/* tensor.c — tensor handles: creation, accessors, views, copies, element access. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

sp_storage *sp_storage_new(size_t nbytes, int zero);
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

static void set_contiguous_strides(sp_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) { t->strides[i] = s; s *= t->shape[i] ? t->shape[i] : 1; }
}

static sp_status make(sp_tensor **out, int dtype, int ndim, const int64_t *shape, int zero) {
    if (!out) return sp_error(SP_EINVAL, "output pointer is NULL");
    *out = NULL;
    if (!sp_dtype_valid(dtype)) return sp_error(SP_EINVAL, "unknown dtype code %d", dtype);
    int64_t n, bytes;
    sp_status st = sp_shape_numel(ndim, shape, &n);
    if (st) return st;
    if (!sp_mul_ok(n, (int64_t)sp_dtype_size(dtype), &bytes))
        return sp_error(SP_ENOMEM, "tensor of %lld elements is too large", (long long)n);
    sp_tensor *t = calloc(1, sizeof *t);
    if (!t) return sp_error(SP_ENOMEM, "out of memory allocating a tensor handle");
    t->st = sp_storage_new((size_t)bytes, zero);
    if (!t->st) {
        free(t);
        return sp_error(SP_ENOMEM, "out of memory allocating %lld bytes for a %s tensor", (long long)bytes,
                        sp_dtype_name(dtype));
    }
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    set_contiguous_strides(t);
    *out = t;
    return SP_OK;
}

sp_status sp_tensor_new(sp_tensor **out, int dtype, int ndim, const int64_t *shape) {
    return make(out, dtype, ndim, shape, 1);
}

sp_status sp_tensor_empty(sp_tensor **out, int dtype, int ndim, const int64_t *shape) {
    return make(out, dtype, ndim, shape, 0);
}

sp_status sp_tensor_from_data(sp_tensor **out, int dtype, int ndim, const int64_t *shape, const void *data,
                              size_t nbytes) {
    sp_status st = make(out, dtype, ndim, shape, 0);
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
    sp_status st = sp_shape_numel(ndim, shape, &n);
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
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}
void *sp_tensor_data(const sp_tensor *t) {
    return t ? (char *)t->st->data + t->offset * (int64_t)sp_dtype_size(t->dtype) : NULL;
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
    sp_status st = sp_tensor_empty(out, dtype, src->ndim, src->shape);
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

static void byte_strides(const sp_tensor *t, int64_t *out) {
    int64_t sz = (int64_t)sp_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) out[d] = t->strides[d] * sz;
}

static void convert_one(int dd, char *dp, int sd, const char *sp) {
    if (dd == sd) { memcpy(dp, sp, sp_dtype_size(dd)); return; }
    if (sp_dtype_is_int(dd) && sp_dtype_is_int(sd) && dd != SP_BOOL && sd != SP_BOOL)
        sp_store_i64(dd, dp, sp_load_i64(sd, sp));
    else if (dd == SP_BFLOAT16 && sd == SP_FLOAT32) { float f; memcpy(&f, sp, 4); uint16_t h = sp_f32_to_bf16(f); memcpy(dp, &h, 2); }
    else sp_store_f64(dd, dp, sp_load_f64(sd, sp));
}

sp_status sp_tensor_copy(sp_tensor *dst, const sp_tensor *src) {
    if (!dst || !src) return sp_error(SP_EINVAL, "copy: tensor is NULL");
    int64_t n = sp_tensor_numel(dst);
    if (n != sp_tensor_numel(src))
        return sp_error(SP_EINVAL, "copy: destination has %lld elements, source has %lld", (long long)n,
                        (long long)sp_tensor_numel(src));
    int same_shape = dst->ndim == src->ndim;
    for (int i = 0; same_shape && i < dst->ndim; i++) same_shape = dst->shape[i] == src->shape[i];
    int dc = sp_tensor_is_contiguous(dst), sc = sp_tensor_is_contiguous(src);
    if (!same_shape && !(dc && sc))
        return sp_error(SP_EINVAL, "copy: shapes differ and a tensor is not contiguous");
    if (n == 0) return SP_OK;
    if (dc && sc) {
        char *dp = sp_tensor_data(dst);
        const char *sp = sp_tensor_data(src);
        if (dst->dtype == src->dtype) { memmove(dp, sp, (size_t)n * sp_dtype_size(dst->dtype)); return SP_OK; }
        size_t ds = sp_dtype_size(dst->dtype), ss = sp_dtype_size(src->dtype);
        if (dst->dtype == SP_FLOAT32 && src->dtype == SP_FLOAT16) {
            for (int64_t i = 0; i < n; i++) ((float *)dp)[i] = sp_f16_to_f32(((const uint16_t *)sp)[i]);
        } else if (dst->dtype == SP_FLOAT32 && src->dtype == SP_BFLOAT16) {
            for (int64_t i = 0; i < n; i++) ((float *)dp)[i] = sp_bf16_to_f32(((const uint16_t *)sp)[i]);
        } else if (dst->dtype == SP_FLOAT32 && src->dtype == SP_FLOAT64) {
            for (int64_t i = 0; i < n; i++) ((float *)dp)[i] = (float)((const double *)sp)[i];
        } else if (dst->dtype == SP_FLOAT64 && src->dtype == SP_FLOAT32) {
            for (int64_t i = 0; i < n; i++) ((double *)dp)[i] = ((const float *)sp)[i];
        } else {
            for (int64_t i = 0; i < n; i++) convert_one(dst->dtype, dp + i * ds, src->dtype, sp + i * ss);
        }
        return SP_OK;
    }
    char *base[2] = {sp_tensor_data(dst), sp_tensor_data(src)};
    int64_t strides[2][SP_MAX_DIMS];
    byte_strides(dst, strides[0]);
    byte_strides(src, strides[1]);
    sp_iter it;
    sp_iter_init(&it, dst->ndim, dst->shape, 2, base, strides);
    do convert_one(dst->dtype, it.ptr[0], src->dtype, it.ptr[1]);
    while (sp_iter_next(&it));
    return SP_OK;
}

static sp_status elem_at(const sp_tensor *t, const int64_t *index, char **p) {
    if (!t) return sp_error(SP_EINVAL, "tensor is NULL");
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d])
            return sp_error(SP_EINVAL, "index %lld is out of range for dimension %d of size %lld",
                            (long long)index[d] + 1, d + 1, (long long)t->shape[d]);
        off += index[d] * t->strides[d];
    }
    *p = (char *)t->st->data + off * (int64_t)sp_dtype_size(t->dtype);
    return SP_OK;
}

sp_status sp_tensor_get(const sp_tensor *t, const int64_t *index, double *value) {
    char *p;
    sp_status st = elem_at(t, index, &p);
    if (st) return st;
    *value = sp_load_f64(t->dtype, p);
    return SP_OK;
}

sp_status sp_tensor_get_i64(const sp_tensor *t, const int64_t *index, int64_t *value) {
    char *p;
    sp_status st = elem_at(t, index, &p);
    if (st) return st;
    *value = sp_load_i64(t->dtype, p);
    return SP_OK;
}

sp_status sp_tensor_set(sp_tensor *t, const int64_t *index, double value) {
    char *p;
    sp_status st = elem_at(t, index, &p);
    if (st) return st;
    sp_store_f64(t->dtype, p, value);
    return SP_OK;
}

sp_status sp_tensor_to_doubles(const sp_tensor *t, double *buf, int64_t n) {
    if (!t || !buf) return sp_error(SP_EINVAL, "to_doubles: NULL argument");
    int64_t numel = sp_tensor_numel(t);
    if (n != numel) return sp_error(SP_EINVAL, "to_doubles: buffer holds %lld, tensor has %lld", (long long)n, (long long)numel);
    for (int64_t i = 0; i < n; i++) buf[i] = sp_load_f64(t->dtype, sp_elem_ptr(t, i));
    return SP_OK;
}

sp_status sp_tensor_from_doubles(sp_tensor *t, const double *buf, int64_t n) {
    if (!t || !buf) return sp_error(SP_EINVAL, "from_doubles: NULL argument");
    int64_t numel = sp_tensor_numel(t);
    if (n != numel) return sp_error(SP_EINVAL, "from_doubles: buffer holds %lld, tensor has %lld", (long long)n, (long long)numel);
    for (int64_t i = 0; i < n; i++) sp_store_f64(t->dtype, sp_elem_ptr(t, i), buf[i]);
    return SP_OK;
}
