/* idx.c — MNIST-format idx files (plain or gzip), and the whole-file reader the
 * dataset decoders share (engine/io/data_read.h).
 * The file is never trusted: the magic, every dim, the dims' product and the
 * payload length are checked (against overflow and against what the file holds)
 * before they are used. */
#include "core/internal.h"
#include "io/data_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Read the whole (decompressed) content of path, at most `cap` bytes plus one
 * (to detect trailing data). gzip is detected by zlib from the magic; plain
 * files are read as they are. */
sp_status sp_data_read_all(const char *path, size_t cap, unsigned char **buf_out, size_t *len_out) {
    *buf_out = NULL;
    *len_out = 0;
    FILE *probe = fopen(path, "rb");
    if (!probe) return sp_error(SP_EIO, "%s: cannot open: %s", path, strerror(errno));
    fclose(probe);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return sp_error(SP_EIO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(gz, 1 << 17);
    size_t want = cap < SIZE_MAX - 1 ? cap + 1 : cap;
    size_t size = 0, alloc = 0;
    unsigned char *buf = NULL;
    for (;;) {
        if (size == alloc) {
            if (alloc >= want) break;
            size_t na = alloc ? alloc * 2 : (1u << 16);
            if (na > want) na = want;
            unsigned char *nb = realloc(buf, na);
            if (!nb) { free(buf); gzclose(gz); return sp_error(SP_ENOMEM, "%s: out of memory reading %zu bytes", path, na); }
            buf = nb; alloc = na;
        }
        size_t chunk = alloc - size;
        if (chunk > (1u << 30)) chunk = 1u << 30;
        int r = gzread(gz, buf + size, (unsigned)chunk);
        if (r < 0) {
            int zerr = 0;
            const char *m = gzerror(gz, &zerr);
            sp_status st = sp_error(SP_EFORMAT, "%s: corrupt or truncated gzip data after %zu decompressed bytes (%s)",
                                    path, size, m ? m : "zlib error");
            free(buf); gzclose(gz);
            return st;
        }
        if (r == 0) break; /* end of stream or an error: checked once below */
        size += (size_t)r;
    }
    /* a gzip stream cut short: zlib reports it at EOF */
    int zerr = 0;
    const char *m = gzerror(gz, &zerr);
    if (zerr != Z_OK && zerr != Z_STREAM_END) {
        sp_status st = sp_error(SP_EFORMAT, "%s: corrupt or truncated gzip data after %zu decompressed bytes (%s)",
                                path, size, m ? m : "zlib error");
        free(buf); gzclose(gz);
        return st;
    }
    gzclose(gz);
    *buf_out = buf;
    *len_out = size;
    return SP_OK;
}

static int idx_dtype(unsigned code, int *dt) {
    switch (code) {
    case 0x08: *dt = SP_UINT8; return 1;
    case 0x09: *dt = SP_INT8; return 1;
    case 0x0B: *dt = SP_INT16; return 1;
    case 0x0C: *dt = SP_INT32; return 1;
    case 0x0D: *dt = SP_FLOAT32; return 1;
    case 0x0E: *dt = SP_FLOAT64; return 1;
    default: return 0;
    }
}

/* Payload limit: larger claims are refused before any allocation. */
#define IDX_MAX_PAYLOAD ((size_t)1 << 36)

sp_status sp_idx_load(sp_tensor **out, const char *path) {
    if (!out || !path) return sp_error(SP_EINVAL, "sp_idx_load: NULL argument");
    *out = NULL;
    /* header first: 4-byte magic + up to 255 dims; read with a small cap */
    unsigned char *buf = NULL;
    size_t len = 0;
    sp_status st = sp_data_read_all(path, 4 + 4 * SP_MAX_DIMS, &buf, &len);
    if (st) return st;
    if (len < 4) {
        free(buf);
        return sp_error(SP_EFORMAT, "%s: not an idx file: expected a 4-byte magic (00 00 type ndim), the file has %zu bytes",
                        path, len);
    }
    unsigned type = buf[2], ndim = buf[3];
    int dt = -1;
    if (buf[0] != 0 || buf[1] != 0 || !idx_dtype(type, &dt)) {
        sp_status e = sp_error(SP_EFORMAT,
                               "%s: not an idx file: bad magic %02x %02x %02x %02x (expected 00 00 <type 08/09/0B/0C/0D/0E> <ndim>)",
                               path, buf[0], buf[1], buf[2], buf[3]);
        free(buf);
        return e;
    }
    if (ndim < 1 || ndim > SP_MAX_DIMS) {
        free(buf);
        return sp_error(SP_EFORMAT, "%s: idx header declares %u dims (expected 1..%d)", path, ndim, SP_MAX_DIMS);
    }
    size_t hdr = 4 + 4 * (size_t)ndim;
    if (len < hdr) {
        free(buf);
        return sp_error(SP_EFORMAT, "%s: truncated idx header: %u dims need %zu header bytes, the file has %zu",
                        path, ndim, hdr, len);
    }
    int64_t shape[SP_MAX_DIMS];
    int64_t numel = 1;
    for (unsigned i = 0; i < ndim; i++) {
        const unsigned char *p = buf + 4 + 4 * i;
        uint32_t d = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
        shape[i] = (int64_t)d;
        if (!sp_mul_ok(numel, shape[i], &numel)) {
            free(buf);
            return sp_error(SP_EFORMAT, "%s: idx dims overflow (product of the dims is too large)", path);
        }
    }
    free(buf);
    size_t isz = sp_dtype_size(dt);
    int64_t nbytes;
    if (!sp_mul_ok(numel, (int64_t)isz, &nbytes) || (uint64_t)nbytes > IDX_MAX_PAYLOAD) {
        return sp_error(SP_EFORMAT, "%s: idx dims declare %lld elements, more than this reader accepts",
                        path, (long long)numel);
    }
    size_t expect = hdr + (size_t)nbytes;
    st = sp_data_read_all(path, expect, &buf, &len);
    if (st) return st;
    if (len != expect) {
        char dims[160];
        size_t o = 0;
        dims[0] = 0;
        for (unsigned i = 0; i < ndim && o < sizeof dims; i++)
            o += (size_t)snprintf(dims + o, sizeof dims - o, "%s%lld", i ? "x" : "", (long long)shape[i]);
        sp_status e;
        if (len < expect)
            e = sp_error(SP_EFORMAT,
                         "%s: truncated idx data: dims %s (%s) need %lld data bytes after the %zu-byte header, the file has %zu",
                         path, dims, sp_dtype_name(dt), (long long)nbytes, hdr, len - hdr);
        else
            e = sp_error(SP_EFORMAT,
                         "%s: idx data longer than its dims: dims %s (%s) need %lld data bytes after the %zu-byte header, the file has more",
                         path, dims, sp_dtype_name(dt), (long long)nbytes, hdr);
        free(buf);
        return e;
    }
    sp_tensor *t = NULL;
    st = sp_tensor_empty(&t, dt, (int)ndim, shape);
    if (st) { free(buf); return st; }
    unsigned char *dst = sp_tensor_data(t);
    const unsigned char *src = buf + hdr;
    if (isz == 1) {
        memcpy(dst, src, (size_t)nbytes);
    } else {
        for (int64_t i = 0; i < numel; i++)           /* big-endian -> host (little-endian) */
            for (size_t b = 0; b < isz; b++) dst[i * isz + b] = src[i * isz + (isz - 1 - b)];
    }
    free(buf);
    *out = t;
    return SP_OK;
}
