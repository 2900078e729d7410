/* idx.c — MNIST-format idx files (plain or gzip), and the whole-file reader the
 * dataset decoders share (engine/io/data_read.h).
 * The file is never trusted: the magic, every dim, the dims' product and the
 * payload length are checked (against overflow and against what the file holds)
 * before they are used. */
#include "core/internal.h"
#include "io/data_read.h"
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Read the whole (decompressed) content of path, at most `cap` bytes plus one
 * (to detect trailing data). A file starting with the gzip magic (1f 8b) is inflated:
 * concatenated gzip members are accepted (as gzip(1) does); any other bytes after the
 * last member are an error. Other files are read as they are. Only a regular file is
 * opened (never blocking on a FIFO); the file is read with read(), never mapped. */
#define RD_CHUNK ((size_t)1 << 17)

static sp_status grow(const char *path, unsigned char **buf, size_t *alloc, size_t want) {
    size_t na = *alloc ? *alloc * 2 : (1u << 16);
    if (na > want) na = want;
    unsigned char *nb = realloc(*buf, na);
    if (!nb) return sp_error(SP_ENOMEM, "%s: out of memory reading %zu bytes", path, na);
    *buf = nb; *alloc = na;
    return SP_OK;
}

/* read() up to len bytes; 0 at end of file */
static ssize_t read_some(int fd, void *dst, size_t len) {
    for (;;) {
        ssize_t r = read(fd, dst, len);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

static sp_status read_plain(const char *path, int fd, const unsigned char *pre, size_t npre, size_t want,
                            unsigned char **buf, size_t *size) {
    size_t alloc = 0;
    *size = 0;
    sp_status st = SP_OK;
    if (npre) {
        if ((st = grow(path, buf, &alloc, want > npre ? want : npre))) return st;
        size_t k = npre < want ? npre : want;
        memcpy(*buf, pre, k);
        *size = k;
    }
    while (*size < want) {
        if (*size == alloc && (st = grow(path, buf, &alloc, want))) return st;
        size_t chunk = alloc - *size;
        if (chunk > ((size_t)1 << 30)) chunk = (size_t)1 << 30;
        ssize_t r = read_some(fd, *buf + *size, chunk);
        if (r < 0) return sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno));
        if (r == 0) break;
        *size += (size_t)r;
    }
    return SP_OK;
}

static sp_status read_gzip(const char *path, int fd, const unsigned char *pre, size_t npre, size_t want,
                           unsigned char **buf, size_t *size) {
    size_t alloc = 0;
    *size = 0;
    unsigned char *in = malloc(RD_CHUNK);
    if (!in) return sp_error(SP_ENOMEM, "%s: out of memory", path);
    memcpy(in, pre, npre);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) { free(in); return sp_error(SP_ENOMEM, "%s: zlib init failed", path); }
    zs.next_in = in;
    zs.avail_in = (uInt)npre;
    int eof = 0, ended = 0;   /* ended: the last member is complete */
    sp_status st = SP_OK;
    while (!st && *size < want) {
        if (zs.avail_in == 0 && !eof) {
            ssize_t r = read_some(fd, in, RD_CHUNK);
            if (r < 0) { st = sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno)); break; }
            if (r == 0) eof = 1;
            zs.next_in = in;
            zs.avail_in = (uInt)r;
        }
        if (zs.avail_in == 0 && eof) {
            if (!ended)
                st = sp_error(SP_EFORMAT, "%s: corrupt or truncated gzip data after %zu decompressed bytes "
                              "(unexpected end of file)", path, *size);
            break;
        }
        if (ended) {
            /* more bytes after a complete member: another member, or garbage */
            if (zs.avail_in < 2 && !eof) {
                /* need two bytes to see the magic: shift and read more */
                memmove(in, zs.next_in, zs.avail_in);
                ssize_t r = read_some(fd, in + zs.avail_in, RD_CHUNK - zs.avail_in);
                if (r < 0) { st = sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno)); break; }
                if (r == 0) eof = 1;
                zs.next_in = in;
                zs.avail_in += (uInt)r;
                continue;
            }
            if (zs.avail_in < 2 || zs.next_in[0] != 0x1f || zs.next_in[1] != 0x8b) {
                st = sp_error(SP_EFORMAT, "%s: trailing garbage after the gzip data (%zu decompressed bytes): "
                              "the file is corrupt or not a plain gzip file", path, *size);
                break;
            }
            inflateReset(&zs);
            ended = 0;
        }
        if (*size == alloc && (st = grow(path, buf, &alloc, want))) break;
        size_t room = alloc - *size;
        if (room > ((size_t)1 << 30)) room = (size_t)1 << 30;
        zs.next_out = *buf + *size;
        zs.avail_out = (uInt)room;
        int z = inflate(&zs, Z_NO_FLUSH);
        *size += room - zs.avail_out;
        if (z == Z_STREAM_END) ended = 1;
        else if (z != Z_OK && z != Z_BUF_ERROR)
            st = sp_error(SP_EFORMAT, "%s: corrupt or truncated gzip data after %zu decompressed bytes (%s)", path,
                          *size, zs.msg ? zs.msg : "zlib error");
        else if (z == Z_BUF_ERROR && zs.avail_in == 0 && eof)
            st = sp_error(SP_EFORMAT, "%s: corrupt or truncated gzip data after %zu decompressed bytes "
                          "(unexpected end of file)", path, *size);
    }
    inflateEnd(&zs);
    free(in);
    return st;
}

sp_status sp_data_read_all(const char *path, size_t cap, unsigned char **buf_out, size_t *len_out) {
    *buf_out = NULL;
    *len_out = 0;
    uint64_t fsize;
    int fd = sp_io_open_regular(path, "a regular file", &fsize, NULL);
    if (fd < 0) return SP_EIO; /* the message is set */
    size_t want = cap < SIZE_MAX - 1 ? cap + 1 : cap;
    unsigned char magic[2];
    ssize_t m = 0;
    while (m < 2) {
        ssize_t r = read_some(fd, magic + m, (size_t)(2 - m));
        if (r < 0) { close(fd); return sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno)); }
        if (r == 0) break;
        m += r;
    }
    unsigned char *buf = NULL;
    size_t size = 0;
    sp_status st;
    if (m == 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        st = read_gzip(path, fd, magic, 2, want, &buf, &size);
    else
        st = read_plain(path, fd, magic, (size_t)m, want, &buf, &size);
    close(fd);
    if (st) { free(buf); return st; }
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
    unsigned char *dst = sp_host_data(t);
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
