/* ckpt.c — opening checkpoints: format detection, CRC trailer, decryption, and the
 * sp_ckpt accessors shared by the .ckpt and safetensors readers. */
#include "io/ckpt_internal.h"
#include "io/file.h"
#include "core/device.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- type names --------------------------------------------------------- */

/* Read from the dtype table (engine/core/dtype.c). */
int ck_ms_dtype(const char *type) {
    if (!type) return -1;
    for (int d = 0; d < SP_NUM_DTYPES; d++) {
        const char *ms = sp_dtypes[d].ms;
        if (strcmp(type, ms) == 0) return d;
        /* older files: "Uint8", "Uint16", ... */
        if (ms[0] == 'U' && type[0] == 'U' && type[1] == 'i' && strcmp(type + 2, ms + 2) == 0) return d;
    }
    return -1;
}
const char *ck_ms_name(int d) { return sp_dtype_valid(d) ? sp_dtypes[d].ms : NULL; }
int ck_st_dtype(const char *type) {
    if (!type) return -1;
    for (int d = 0; d < SP_NUM_DTYPES; d++) if (strcmp(type, sp_dtypes[d].st) == 0) return d;
    return -1;
}
const char *ck_st_name(int d) { return sp_dtype_valid(d) ? sp_dtypes[d].st : NULL; }

uint32_t sp_crc32(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n > 0) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, k);
        p += k; n -= k;
    }
    return crc;
}

uint32_t ck_crc32_zeros(uint32_t crc, uint64_t n) {
    /* crc32 of n zeros via squaring: z = crc(0, n zeros) built from powers of two. */
    static const uint8_t zero = 0;
    uint32_t zcrc = 0; uint64_t zlen = 0;          /* crc of zlen zeros */
    uint32_t p = (uint32_t)crc32(0, &zero, 1); uint64_t plen = 1; /* crc of plen zeros */
    while (n) {
        if (n & 1) { zcrc = zlen ? (uint32_t)crc32_combine(zcrc, p, (z_off_t)plen) : p; zlen += plen; }
        n >>= 1;
        if (n) { p = (uint32_t)crc32_combine(p, p, (z_off_t)plen); plen *= 2; }
    }
    return zlen ? (uint32_t)crc32_combine(crc, zcrc, (z_off_t)zlen) : crc;
}

/* ---- file buffers (ck_map) ------------------------------------------------ */

ck_map *ck_map_heap(void *data, size_t len) {
    ck_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->addr = data; m->len = len; m->heap = 1;
    atomic_init(&m->refs, 1);
    sp_mem_account(NULL, (long long)(len + sizeof *m));
    return m;
}
ck_map *ck_map_borrow(const void *data, size_t len) {
    ck_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->addr = (void *)data; m->len = len; m->heap = 2;
    atomic_init(&m->refs, 1);
    return m;
}
ck_map *ck_map_block(void *block, size_t len) {
    ck_map *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->addr = block; m->len = len; m->heap = 3;
    atomic_init(&m->refs, 1);
    sp_mem_account(NULL, (long long)sizeof *m);
    return m;
}
void ck_map_retain(ck_map *m) { atomic_fetch_add(&m->refs, 1); }
void ck_map_release(void *ctx) {
    ck_map *m = ctx;
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    if (m->heap == 2) { free(m); return; }
    if (m->heap == 3) {
        ck_block_free_uncached(m->addr);
        sp_mem_account(NULL, -(long long)sizeof *m);
        free(m);
        return;
    }
    free(m->addr);
    sp_mem_account(NULL, -(long long)(m->len + sizeof *m));
    free(m);
}

/* ---- the checkpoint object ---------------------------------------------- */

ck_entry *ck_push(sp_ckpt *c) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 64;
        ck_entry *e = realloc(c->e, (size_t)cap * sizeof *e);
        if (!e) return NULL;
        c->e = e; c->cap = cap;
    }
    ck_entry *e = &c->e[c->n++];
    memset(e, 0, sizeof *e);
    e->dtype = -1;
    return e;
}

static int by_entry_name(const void *a, const void *b) {
    return strcmp((*(const ck_entry *const *)a)->name, (*(const ck_entry *const *)b)->name);
}

sp_status ck_check_unique(sp_ckpt *c, const char *hint) {
    if (c->n < 2) return SP_OK;
    const ck_entry **by = malloc((size_t)c->n * sizeof *by);
    if (!by) return sp_error(SP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < c->n; i++) by[i] = &c->e[i];
    qsort(by, (size_t)c->n, sizeof *by, by_entry_name);
    sp_status st = SP_OK;
    for (int64_t i = 1; i < c->n && !st; i++)
        if (strcmp(by[i]->name, by[i - 1]->name) == 0)
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s' appears twice (entries %lld and %lld%s), expected unique "
                          "names", c->path, by[i]->name, (long long)(by[i - 1] - c->e), (long long)(by[i] - c->e),
                          hint ? hint : "");
    free(by);
    return st;
}

void sp_ckpt_close(sp_ckpt *c) {
    if (!c) return;
    for (int64_t i = 0; i < c->n; i++) {
        free(c->e[i].name); free(c->e[i].type); ck_block_free(c->e[i].raw);
        sp_tensor_free(c->e[i].t);
    }
    free(c->e); free(c->path); free(c->meta);
    if (c->acct) sp_mem_account(NULL, -c->acct);
    ck_map_release(c->map);
    free(c);
}

static int ok_index(const sp_ckpt *c, int64_t i) { return c && i >= 0 && i < c->n; }
int64_t sp_ckpt_count(const sp_ckpt *c) { return c ? c->n : 0; }
int sp_ckpt_format(const sp_ckpt *c) { return c ? c->format : 0; }
const char *sp_ckpt_name(const sp_ckpt *c, int64_t i) { return ok_index(c, i) ? c->e[i].name : NULL; }
const char *sp_ckpt_type(const sp_ckpt *c, int64_t i) { return ok_index(c, i) ? c->e[i].type : NULL; }
int sp_ckpt_dtype(const sp_ckpt *c, int64_t i) { return ok_index(c, i) ? c->e[i].dtype : -1; }
int sp_ckpt_shape(const sp_ckpt *c, int64_t i, int64_t *shape) {
    if (!ok_index(c, i)) return -1;
    for (int d = 0; d < c->e[i].ndim; d++) shape[d] = c->e[i].shape[d];
    return c->e[i].ndim;
}
size_t sp_ckpt_nbytes(const sp_ckpt *c, int64_t i) { return ok_index(c, i) ? c->e[i].nbytes : 0; }
const void *sp_ckpt_bytes(const sp_ckpt *c, int64_t i) { return ok_index(c, i) ? c->e[i].data : NULL; }
int sp_ckpt_crc(const sp_ckpt *c, uint32_t *crc) {
    if (!c) return 0;
    if (crc) *crc = c->crc;
    return c->crc_state;
}
const char *sp_ckpt_encryption(const sp_ckpt *c) { return c ? c->enc : ""; }
const char *sp_ckpt_metadata(const sp_ckpt *c) { return c && c->meta ? c->meta : ""; }

sp_status sp_ckpt_tensor(const sp_ckpt *c, int64_t i, sp_tensor **out) {
    if (!out) return sp_error(SP_EINVAL, "sp_ckpt_tensor: out is NULL");
    *out = NULL;
    if (!ok_index(c, i)) return sp_error(SP_EINVAL, "sp_ckpt_tensor: index %lld out of range", (long long)i);
    const ck_entry *e = &c->e[i];
    if (e->dtype < 0)
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': type '%s' has no tensor representation",
                        c->path, e->name, e->type);
    if (e->t) return sp_tensor_alias(out, e->t);
    if (e->aligned && c->map) {
        ck_map_retain(c->map);
        sp_status st = sp_tensor_adopt(out, e->dtype, e->ndim, e->shape, e->data, e->nbytes, ck_map_release, c->map);
        if (st) ck_map_release(c->map);
        return st;
    }
    return sp_tensor_from_data(out, e->dtype, e->ndim, e->shape, e->data, e->nbytes);
}

/* ---- opening ------------------------------------------------------------ */

/* The CRC trailer of a .ckpt: "crc_num" + 10-byte big-endian CRC-32 of everything
 * before it. buf holds the file's last n (>= 17 to have one) bytes. */
static sp_status read_trailer(sp_ckpt *c, const uint8_t *buf, size_t n, int flags, int *has) {
    *has = 0;
    if (n >= 17 && memcmp(buf + n - 17, "crc_num", 7) == 0) {
        const uint8_t *t = buf + n - 10;
        uint64_t v = 0;
        for (int k = 0; k < 10; k++) {
            if (k < 2 && t[k]) v = UINT64_MAX;
            if (v != UINT64_MAX) v = (v << 8) | t[k];
        }
        if (v > 0xffffffffu)
            return sp_error(SP_EFORMAT, "file '%s': malformed crc_num trailer (value exceeds 32 bits)", c->path);
        c->crc = (uint32_t)v;
        c->crc_state = 1;
        *has = 1;
    } else if (flags & SP_CKPT_CRC) {
        return sp_error(SP_ECRC, "file '%s': crc_check requested but the file has no crc_num trailer", c->path);
    }
    return SP_OK;
}

static sp_status crc_mismatch(const sp_ckpt *c, uint32_t got) {
    return sp_error(SP_ECRC, "file '%s': CRC mismatch: the trailer says %u, the content gives %u "
                    "(file corrupted or modified)", c->path, c->crc, got);
}

static sp_status open_buffer(sp_ckpt *c, ck_map *m, int format, int flags, const void *key, size_t keylen,
                             const char *mode) {
    const uint8_t *buf = m->addr;
    size_t n = m->len;
    if (n == 0)
        return sp_error(SP_EFORMAT, "file '%s': empty file (0 bytes), not a checkpoint", c->path);
    uint32_t magic = 0;
    if (ck_is_encrypted(buf, n, &magic)) {
        if (format == SP_CKPT_SAFETENSORS || format == SP_CKPT_PTH)
            return sp_error(SP_EFORMAT, "file '%s': encrypted .ckpt, not %s", c->path,
                            format == SP_CKPT_PTH ? "a .pth file" : "safetensors");
        const char *name = magic == CK_MAGIC_GCM ? "AES-GCM" : magic == CK_MAGIC_CBC ? "AES-CBC" : "SM4-CBC";
        if (!key)
            return sp_error(SP_ECRYPTO, "file '%s': the checkpoint is encrypted (%s): pass dec_key", c->path, name);
        uint8_t *plain = NULL; size_t pn = 0;
        sp_status st = ck_decrypt(c->path, buf, n, key, keylen, mode, &plain, &pn);
        if (st) return st;
        snprintf(c->enc, sizeof c->enc, "%s", name);
        ck_map *pm = ck_map_heap(plain, pn);
        if (!pm) { free(plain); return sp_error(SP_ENOMEM, "file '%s': out of memory", c->path); }
        st = open_buffer(c, pm, SP_CKPT_PROTO, flags, NULL, 0, NULL);
        ck_map_release(pm);
        return st;
    }
    if (key && !c->enc[0])
        return sp_error(SP_ECRYPTO, "file '%s': dec_key given but the file is not encrypted", c->path);
    if (format == SP_CKPT_PTH || (format == SP_CKPT_AUTO && ck_is_pth(buf, n))) {
        if (!ck_is_pth(buf, n))
            return sp_error(SP_EFORMAT, "file '%s': not a PyTorch .pth file (no zip magic PK\\3\\4)", c->path);
        c->format = SP_CKPT_PTH;
        return ck_parse_pth(c, buf, n);
    }
    if (format != SP_CKPT_PROTO && ck_is_safetensors(buf, n)) {
        c->format = SP_CKPT_SAFETENSORS;
        if (m->heap == 2) {   /* views must outlive the caller's buffer: copy it */
            void *copy = malloc(n);
            if (!copy) return sp_error(SP_ENOMEM, "file '%s': out of memory", c->path);
            memcpy(copy, buf, n);
            c->map = ck_map_heap(copy, n);
            if (!c->map) { free(copy); return sp_error(SP_ENOMEM, "file '%s': out of memory", c->path); }
        } else {
            ck_map_retain(m);
            c->map = m;
        }
        return ck_parse_safetensors(c, flags);
    }
    if (format == SP_CKPT_SAFETENSORS)
        return sp_error(SP_EFORMAT, "file '%s': not a safetensors file (bad header)", c->path);
    c->format = SP_CKPT_PROTO;
    /* CRC trailer: "crc_num" + 10-byte big-endian CRC-32 of everything before it. */
    int has = 0;
    sp_status st = read_trailer(c, buf, n, flags, &has);
    if (st) return st;
    if (has) {
        n -= 17;
        if (flags & SP_CKPT_CRC) {
            uint32_t got = sp_crc32(0, buf, n);
            if (got != c->crc) return crc_mismatch(c, got);
            c->crc_state = 2;
        }
    }
    if (n == 0)
        return sp_error(SP_EFORMAT, "file '%s': no tensors before the CRC trailer", c->path);
    return ck_parse_proto(c, buf, n);
}

/* The bookkeeping an open checkpoint holds (its entry table, names, type strings, path,
 * metadata) is counted in sp_mem_stats from here to sp_ckpt_close; the contents are
 * counted where they live (reader blocks, tensor storage, the file buffer). */
static long long bookkeeping_bytes(const sp_ckpt *c) {
    long long n = (long long)sizeof *c + (long long)c->cap * (long long)sizeof(ck_entry);
    if (c->path) n += (long long)strlen(c->path) + 1;
    if (c->meta) n += (long long)strlen(c->meta) + 1;
    for (int64_t i = 0; i < c->n; i++) {
        if (c->e[i].name) n += (long long)strlen(c->e[i].name) + 1;
        if (c->e[i].type) n += (long long)strlen(c->e[i].type) + 1;
    }
    return n;
}

static sp_status finish(sp_ckpt *c, sp_status st, sp_ckpt **out) {
    if (st) { sp_ckpt_close(c); return st; }
    c->acct = bookkeeping_bytes(c);
    sp_mem_account(NULL, c->acct);
    *out = c;
    return SP_OK;
}

sp_status sp_ckpt_open_memory(sp_ckpt **out, const void *data, size_t nbytes, const char *name, int format,
                              int flags, const void *key, size_t keylen, const char *mode) {
    if (!out) return sp_error(SP_EINVAL, "sp_ckpt_open_memory: out is NULL");
    *out = NULL;
    sp_ckpt *c = calloc(1, sizeof *c);
    if (!c) return sp_error(SP_ENOMEM, "out of memory");
    c->path = strdup(name ? name : "<memory>");
    if (!c->path) return finish(c, sp_error(SP_ENOMEM, "out of memory"), out);
    /* borrowed: a .ckpt is parsed (contents copied into tensors) before we return;
     * safetensors views get their own copy in open_buffer */
    ck_map *m = ck_map_borrow(nbytes ? data : "", nbytes);
    if (!m) return finish(c, sp_error(SP_ENOMEM, "out of memory"), out);
    sp_status st = open_buffer(c, m, format, flags, key, keylen, mode);
    ck_map_release(m);
    return finish(c, st, out);
}

/* After a whole read: the file must be the one we started with (same size and mtime). */
static sp_status check_unchanged(const char *path, int fd, const struct stat *before) {
    struct stat now;
    if (fstat(fd, &now) != 0) return sp_error(SP_EIO, "file '%s': cannot stat: %s", path, strerror(errno));
    if (now.st_size != before->st_size || now.st_mtim.tv_sec != before->st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != before->st_mtim.tv_nsec)
        return sp_error(SP_EIO, "file '%s': changed while reading (size %lld -> %lld bytes or modified): "
                        "load it again once it is complete", path, (long long)before->st_size,
                        (long long)now.st_size);
    return SP_OK;
}

/* The whole file into one engine block (counted while the ck_map lives; a big file
 * gets huge pages, as .ckpt contents do, and is unmapped when its last user dies). */
static sp_status read_whole(sp_ckpt *c, int fd, size_t n, ck_map **out) {
    *out = NULL;
    uint8_t *buf = ck_block_alloc(n);
    if (!buf) return sp_error(SP_ENOMEM, "file '%s': out of memory reading %zu bytes", c->path, n);
    sp_status st = ck_pread_all(c->path, fd, buf, n, 0, n);
    if (st) { ck_block_free_uncached(buf); return st; }
    *out = ck_map_block(buf, n);
    if (!*out) { ck_block_free_uncached(buf); return sp_error(SP_ENOMEM, "file '%s': out of memory", c->path); }
    return SP_OK;
}

static sp_status open_file(sp_ckpt *c, int fd, const struct stat *sb, int format, int flags, const void *key,
                           size_t keylen, const char *mode) {
    size_t n = (size_t)sb->st_size;
    if (n == 0) return sp_error(SP_EFORMAT, "file '%s': empty file (0 bytes), not a checkpoint", c->path);
    uint8_t head[16] = {0};
    size_t hn = n < sizeof head ? n : sizeof head;
    sp_status st = ck_pread_full(c->path, fd, head, hn, 0, n);
    if (st) return st;
    uint32_t magic = 0;
    int proto = !ck_is_encrypted(head, hn, &magic) && format != SP_CKPT_PTH && format != SP_CKPT_SAFETENSORS &&
                !(format == SP_CKPT_AUTO && ck_is_pth(head, hn)) &&
                !(format != SP_CKPT_PROTO && hn >= 10 && ck_is_safetensors(head, n));
    if (!proto) {
        /* safetensors (tensors share the buffer), .pth (copied out), encrypted (decrypted
         * into a second buffer): the whole file in engine memory */
        ck_map *m = NULL;
        st = read_whole(c, fd, n, &m);
        if (!st) st = check_unchanged(c->path, fd, sb);
        if (!st) st = open_buffer(c, m, format, flags, key, keylen, mode);
        ck_map_release(m);
        return st;
    }
    if (key) return sp_error(SP_ECRYPTO, "file '%s': dec_key given but the file is not encrypted", c->path);
    c->format = SP_CKPT_PROTO;
    int has = 0;
    if (n >= 17) {
        uint8_t tail[17];
        st = ck_pread_full(c->path, fd, tail, 17, n - 17, n);
        if (st) return st;
        st = read_trailer(c, tail, 17, flags, &has);
    } else {
        st = read_trailer(c, head, hn, flags, &has);
    }
    if (st) return st;
    if (has) n -= 17;
    if (n == 0) return sp_error(SP_EFORMAT, "file '%s': no tensors before the CRC trailer", c->path);
    uint32_t crc = c->crc;
    st = ck_parse_proto_fd(c, fd, n, has && (flags & SP_CKPT_CRC), &crc);
    if (!st) st = check_unchanged(c->path, fd, sb);
    if (!st && has && (flags & SP_CKPT_CRC)) {
        if (crc != c->crc) return crc_mismatch(c, crc);
        c->crc_state = 2;
    }
    return st;
}

sp_status sp_ckpt_open(sp_ckpt **out, const char *path, int format, int flags, const void *key, size_t keylen,
                       const char *mode) {
    if (!out) return sp_error(SP_EINVAL, "sp_ckpt_open: out is NULL");
    *out = NULL;
    if (!path) return sp_error(SP_EINVAL, "sp_ckpt_open: path is NULL");
    sp_ckpt *c = calloc(1, sizeof *c);
    if (!c) return sp_error(SP_ENOMEM, "out of memory");
    c->path = strdup(path);
    if (!c->path) return finish(c, sp_error(SP_ENOMEM, "out of memory"), out);
    uint64_t size = 0;
    struct stat sb;
    int fd = sp_io_open_regular(path, "a regular file", &size, &sb);
    if (fd < 0) return finish(c, SP_EIO, out);
    if (size > SIZE_MAX / 2) {
        close(fd);
        return finish(c, sp_error(SP_EFORMAT, "file '%s': %llu bytes, too large", path, (unsigned long long)size), out);
    }
    sp_status st = open_file(c, fd, &sb, format, flags, key, keylen, mode);
    close(fd);
    return finish(c, st, out);
}
