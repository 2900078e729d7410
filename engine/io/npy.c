/* npy.c — NumPy .npy files (format versions 1.0, 2.0, 3.0): a strict reader of the
 * header dict ({'descr': ..., 'fortran_order': ..., 'shape': (...), } exactly) and an
 * atomic writer (temp file + fsync + rename). */
#include "core/internal.h"
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAX_HEADER (1u << 20)

typedef struct {
    int dtype, swap, ndim;
    int64_t shape[SP_MAX_DIMS];
    size_t nbytes;
} npy_hdr;

static int descr_dtype(const char *d, int *dt, int *swap) {
    char e = d[0];
    if (e != '<' && e != '>' && e != '|' && e != '=') return 0;
    const char *t = d + 1;
    static const struct { const char *n; int dt; } tab[] = {
        {"f4", SP_FLOAT32}, {"f8", SP_FLOAT64}, {"f2", SP_FLOAT16}, {"i1", SP_INT8}, {"i2", SP_INT16},
        {"i4", SP_INT32}, {"i8", SP_INT64}, {"u1", SP_UINT8}, {"u2", SP_UINT16}, {"u4", SP_UINT32},
        {"u8", SP_UINT64}, {"b1", SP_BOOL}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(t, tab[i].n) == 0) {
            size_t sz = sp_dtype_size(tab[i].dt);
            if (sz == 1) { *swap = 0; }
            else {
                if (e == '|') return 0;
                *swap = e == '>';
            }
            *dt = tab[i].dt;
            return 1;
        }
    return 0;
}

typedef struct { const char *p, *end; } cur;

static void ws(cur *c) { while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++; }
static int lit(cur *c, char ch) { ws(c); if (c->p < c->end && *c->p == ch) { c->p++; return 1; } return 0; }

static int pystr(cur *c, char *out, size_t cap) {
    ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

static sp_status parse_header(const char *name, const unsigned char *b, size_t avail, size_t *total, npy_hdr *h) {
    if (avail < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return sp_error(SP_EFORMAT, "%s: not a .npy file (expected the magic \\x93NUMPY)", name);
    int major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return sp_error(SP_EFORMAT, "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", name, major, minor);
    size_t pre = major == 1 ? 10 : 12, hl;
    if (avail < pre) return sp_error(SP_EFORMAT, "%s: truncated .npy preamble", name);
    if (major == 1) hl = (size_t)b[8] | (size_t)b[9] << 8;
    else hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (hl > NPY_MAX_HEADER) return sp_error(SP_EFORMAT, "%s: .npy header of %zu bytes is larger than 1 MiB", name, hl);
    if (avail < pre + hl)
        return sp_error(SP_EFORMAT, "%s: truncated .npy header (%zu bytes declared, %zu present)", name, hl, avail - pre);
    *total = pre + hl;
    const char *s = (const char *)b + pre;
    if (hl == 0 || s[hl - 1] != '\n') return sp_error(SP_EFORMAT, "%s: .npy header does not end with a newline", name);
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t')
            return sp_error(SP_EFORMAT, "%s: .npy header has a control byte at %zu", name, i);
    cur c = {s, s + hl - 1};
    int have_d = 0, have_f = 0, have_s = 0, fortran = 0;
    char key[32], descr[32];
    if (!lit(&c, '{')) return sp_error(SP_EFORMAT, "%s: .npy header is not a dict ({...})", name);
    for (;;) {
        if (lit(&c, '}')) break;
        if (!pystr(&c, key, sizeof key) || !lit(&c, ':'))
            return sp_error(SP_EFORMAT, "%s: .npy header: expected 'key': value", name);
        if (strcmp(key, "descr") == 0 && !have_d) {
            if (!pystr(&c, descr, sizeof descr))
                return sp_error(SP_EFORMAT, "%s: .npy header: descr must be a simple type string ('<f4'...); structured dtypes are not supported", name);
            if (!descr_dtype(descr, &h->dtype, &h->swap))
                return sp_error(SP_EFORMAT, "%s: .npy dtype '%s' is not supported (f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)", name, descr);
            have_d = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_f) {
            ws(&c);
            if (c.end - c.p >= 4 && memcmp(c.p, "True", 4) == 0) { fortran = 1; c.p += 4; }
            else if (c.end - c.p >= 5 && memcmp(c.p, "False", 5) == 0) { fortran = 0; c.p += 5; }
            else return sp_error(SP_EFORMAT, "%s: .npy header: fortran_order must be True or False", name);
            have_f = 1;
        } else if (strcmp(key, "shape") == 0 && !have_s) {
            if (!lit(&c, '(')) return sp_error(SP_EFORMAT, "%s: .npy header: shape must be a tuple", name);
            h->ndim = 0;
            for (;;) {
                if (lit(&c, ')')) break;
                ws(&c);
                if (c.p >= c.end || *c.p < '0' || *c.p > '9') return sp_error(SP_EFORMAT, "%s: .npy header: bad shape entry", name);
                int64_t v = 0;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    if (v > (INT64_MAX - 9) / 10) return sp_error(SP_EFORMAT, "%s: .npy header: shape entry too large", name);
                    v = v * 10 + (*c.p++ - '0');
                }
                if (h->ndim >= SP_MAX_DIMS) return sp_error(SP_EFORMAT, "%s: .npy array has more than %d dims", name, SP_MAX_DIMS);
                h->shape[h->ndim++] = v;
                if (lit(&c, ')')) break;
                if (!lit(&c, ',')) return sp_error(SP_EFORMAT, "%s: .npy header: bad shape tuple", name);
            }
            have_s = 1;
        } else {
            return sp_error(SP_EFORMAT, "%s: .npy header: unexpected or repeated key '%s' (expected descr, fortran_order, shape)", name, key);
        }
        if (lit(&c, '}')) break;
        if (!lit(&c, ',')) return sp_error(SP_EFORMAT, "%s: .npy header: expected ',' or '}'", name);
    }
    ws(&c);
    if (c.p != c.end) return sp_error(SP_EFORMAT, "%s: .npy header: bytes after the dict", name);
    if (!have_d || !have_f || !have_s) return sp_error(SP_EFORMAT, "%s: .npy header lacks %s", name, !have_d ? "descr" : !have_f ? "fortran_order" : "shape");
    if (fortran && h->ndim > 1)
        return sp_error(SP_EFORMAT, "%s: .npy array is fortran_order=True: not supported (save it with np.ascontiguousarray)", name);
    int64_t numel = 1;
    for (int i = 0; i < h->ndim; i++)
        if (!sp_mul_ok(numel, h->shape[i], &numel)) return sp_error(SP_EFORMAT, "%s: .npy shape overflows", name);
    int64_t nb;
    if (!sp_mul_ok(numel, (int64_t)sp_dtype_size(h->dtype), &nb) || nb > ((int64_t)1 << 40))
        return sp_error(SP_EFORMAT, "%s: .npy payload too large", name);
    h->nbytes = (size_t)nb;
    return SP_OK;
}

static void swap_bytes(unsigned char *p, size_t n, size_t sz) {
    for (size_t i = 0; i < n; i += sz)
        for (size_t a = 0, b = sz - 1; a < b; a++, b--) { unsigned char t = p[i + a]; p[i + a] = p[i + b]; p[i + b] = t; }
}

static sp_status make(sp_tensor **out, const npy_hdr *h, const char *name) {
    sp_status st = sp_tensor_empty(out, h->dtype, h->ndim, h->shape);
    if (st) return sp_error(st, "%s: %s", name, sp_last_error());
    return SP_OK;
}

static sp_status finish(sp_tensor *t, const npy_hdr *h, const char *name) {
    unsigned char *d = sp_host_data(t);
    if (h->swap) swap_bytes(d, h->nbytes, sp_dtype_size(h->dtype));
    if (h->dtype == SP_BOOL)
        for (size_t i = 0; i < h->nbytes; i++)
            if (d[i] > 1) return sp_error(SP_EFORMAT, "%s: .npy bool array holds byte %d at %zu (expected 0 or 1)", name, d[i], i);
    return SP_OK;
}

sp_status sp_npy_load_mem(sp_tensor **out, const void *data, size_t nbytes, const char *name) {
    if (!out || (!data && nbytes)) return sp_error(SP_EINVAL, "sp_npy_load_mem: NULL argument");
    *out = NULL;
    if (!name) name = "<memory>";
    npy_hdr h;
    size_t hdr;
    sp_status st = parse_header(name, data, nbytes, &hdr, &h);
    if (st) return st;
    if (nbytes - hdr != h.nbytes)
        return sp_error(SP_EFORMAT, "%s: .npy payload is %zu bytes, the header's shape and dtype need %zu", name, nbytes - hdr, h.nbytes);
    sp_tensor *t = NULL;
    if ((st = make(&t, &h, name))) return st;
    if (h.nbytes) memcpy(sp_host_data(t), (const unsigned char *)data + hdr, h.nbytes);
    if ((st = finish(t, &h, name))) { sp_tensor_free(t); return st; }
    *out = t;
    return SP_OK;
}

static ssize_t read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) { if (errno == EINTR) continue; return -1; }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

sp_status sp_npy_load(sp_tensor **out, const char *path) {
    if (!out || !path) return sp_error(SP_EINVAL, "sp_npy_load: NULL argument");
    *out = NULL;
    uint64_t fsize;
    int fd = sp_io_open_regular(path, "a .npy file", &fsize, NULL);
    if (fd < 0) return SP_EIO; /* the message is set */
    unsigned char pre[12];
    ssize_t n = read_full(fd, pre, 12);
    if (n < 0) { close(fd); return sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno)); }
    size_t hl = 0, pl = 10;
    if (n >= 10 && memcmp(pre, "\x93NUMPY", 6) == 0) {
        if (pre[6] == 1) hl = (size_t)pre[8] | (size_t)pre[9] << 8;
        else if (n >= 12) { hl = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24; pl = 12; }
    }
    if (hl > NPY_MAX_HEADER) hl = 0; /* parse_header reports it */
    size_t want = pl + hl;
    unsigned char *hb = malloc(want > 12 ? want : 12);
    if (!hb) { close(fd); return sp_error(SP_ENOMEM, "%s: out of memory", path); }
    memcpy(hb, pre, (size_t)n);
    ssize_t m = (size_t)n < want ? read_full(fd, hb + n, want - (size_t)n) : 0;
    if (m < 0) { free(hb); close(fd); return sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno)); }
    size_t avail = (size_t)n + (size_t)m;
    npy_hdr h;
    size_t hdr;
    sp_status st = parse_header(path, hb, avail, &hdr, &h);
    if (st) { free(hb); close(fd); return st; }
    sp_tensor *t = NULL;
    if ((st = make(&t, &h, path))) { free(hb); close(fd); return st; }
    unsigned char *d = sp_host_data(t);
    size_t extra = avail - hdr; /* payload bytes already read with the preamble */
    if (extra > h.nbytes) extra = h.nbytes;
    memcpy(d, hb + hdr, extra);
    int over = avail - hdr > h.nbytes;
    free(hb);
    ssize_t r = h.nbytes > extra ? read_full(fd, d + extra, h.nbytes - extra) : 0;
    unsigned char probe;
    ssize_t tail = over ? 1 : read_full(fd, &probe, 1);
    close(fd);
    if (r < 0 || tail < 0) { sp_tensor_free(t); return sp_error(SP_EIO, "%s: read error", path); }
    if (extra + (size_t)r != h.nbytes) {
        sp_tensor_free(t);
        return sp_error(SP_EFORMAT, "%s: truncated .npy payload: %zu of %zu bytes", path, extra + (size_t)r, h.nbytes);
    }
    if (tail > 0) { sp_tensor_free(t); return sp_error(SP_EFORMAT, "%s: .npy file has bytes after the payload", path); }
    if ((st = finish(t, &h, path))) { sp_tensor_free(t); return st; }
    *out = t;
    return SP_OK;
}

sp_status sp_npy_save(const char *path, const sp_tensor *t) {
    if (!path || !t) return sp_error(SP_EINVAL, "sp_npy_save: NULL argument");
    static const char *const descr[SP_NUM_DTYPES] = {"<f4", "<f2", NULL, "<f8", "|i1", "<i2", "<i4", "<i8",
                                                     "|u1", "<u2", "<u4", "<u8", "|b1"};
    int dt = sp_tensor_dtype(t);
    if (dt < 0 || dt >= SP_NUM_DTYPES || !descr[dt])
        return sp_error(SP_EINVAL, "%s: .npy has no %s dtype (convert the tensor first)", path, sp_dtype_name(dt));
    char hdr[64 + 24 * SP_MAX_DIMS];
    int ndim = sp_tensor_ndim(t);
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr[dt]);
    for (int i = 0; i < ndim; i++)
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%lld,%s", (long long)sp_tensor_dim(t, i), ndim == 1 || i + 1 == ndim ? "" : " ");
    if (ndim > 1) k--; /* numpy writes (2, 3) but (2,) */
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "), }");
    size_t total = 10 + (size_t)k + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hl = (size_t)k + pad + 1;
    size_t nb = sp_tensor_nbytes(t);
    unsigned char *buf = malloc(10 + hl + nb);
    if (!buf) return sp_error(SP_ENOMEM, "%s: out of memory", path);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, hdr, (size_t)k);
    memset(buf + 10 + k, ' ', pad);
    buf[10 + hl - 1] = '\n';
    sp_status st = nb ? sp_tensor_read(t, buf + 10 + hl, nb) : SP_OK;
    if (st) { free(buf); return st; }
    /* atomic: a unique temp file next to path, renamed over it */
    size_t pn = strlen(path);
    char *tmp = malloc(pn + 40);
    if (!tmp) { free(buf); return sp_error(SP_ENOMEM, "%s: out of memory", path); }
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, pn + 40, "%s.spore-%d-%d.tmp", path, (int)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        st = sp_error(SP_EIO, "%s: cannot create a temporary file next to it: %s", path, strerror(errno));
        free(tmp); free(buf);
        return st;
    }
    size_t len = 10 + hl + nb, off = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0) { if (errno == EINTR) continue; break; }
        off += (size_t)w;
    }
    free(buf);
    if (off != len || fsync(fd) != 0) {
        st = sp_error(SP_EIO, "%s: write failed: %s", path, strerror(errno));
        close(fd); unlink(tmp); free(tmp);
        return st;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        st = sp_error(SP_EIO, "%s: cannot rename the temporary file over it: %s", path, strerror(errno));
        unlink(tmp); free(tmp);
        return st;
    }
    free(tmp);
    return SP_OK;
}
