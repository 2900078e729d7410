/* test_underfoot.c — files that change while spore reads them, or afterwards (issue #13,
 * defect 3), and the small reader items: non-regular files refused at open, gzip trailing
 * garbage refused, an empty non-first .ckpt slice (UBSan: memcpy from NULL).
 * Truncation during a load is made deterministic with the engine-private read hook
 * (ck_read_hook, called before every read of a user's file). */
#include "check.h"
#include "io/ckpt_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define UF_N 300000   /* floats per tensor: 1.2 MB, more than one read chunk */
#define UF_T 3

static void fill(float *v, int k) {
    for (int i = 0; i < UF_N; i++) v[i] = (float)(k * 1000 + i % 997) * 0.25f;
}

/* a .ckpt or .safetensors of UF_T float32 tensors of UF_N elements */
static int write_file(const char *path, int format) {
    sp_ckpt_writer *w = NULL;
    if (sp_ckpt_writer_open(&w, path, format, 0, NULL, 0, NULL)) return 0;
    float *v = malloc(UF_N * sizeof *v);
    int ok = v != NULL;
    for (int k = 0; ok && k < UF_T; k++) {
        fill(v, k);
        int64_t sh[1] = {UF_N};
        sp_tensor *t = NULL;
        char name[32];
        snprintf(name, sizeof name, "w%d", k);
        ok = sp_tensor_from_data(&t, SP_FLOAT32, 1, sh, v, UF_N * sizeof *v) == SP_OK &&
             sp_ckpt_writer_add(w, name, t) == SP_OK;
        sp_tensor_free(t);
    }
    free(v);
    if (!ok) { sp_ckpt_writer_abort(w); return 0; }
    return sp_ckpt_writer_commit(w) == SP_OK;
}

static off_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* overwrite every byte of the file in place (same size, same inode) */
static int scribble(const char *path) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return 0;
    off_t n = file_size(path);
    char junk[4096];
    memset(junk, 0x7f, sizeof junk);
    int ok = 1;
    for (off_t o = 0; ok && o < n; o += (off_t)sizeof junk)
        ok = pwrite(fd, junk, (size_t)(n - o < (off_t)sizeof junk ? n - o : (off_t)sizeof junk), o) > 0;
    close(fd);
    return ok;
}

static void after_load(const char *dir, int format, const char *ext) {
    char path[256];
    snprintf(path, sizeof path, "%s/after.%s", dir, ext);
    CHECK(write_file(path, format), "%s: written", ext);
    sp_ckpt *c = NULL;
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    if (!c) return;
    CHECK(sp_ckpt_count(c) == UF_T, "%s: %d tensors", ext, UF_T);
    sp_tensor *t[UF_T] = {0};
    float *want = malloc(UF_N * sizeof *want);
    for (int k = 0; k < UF_T; k++) CHECK_OK(sp_ckpt_tensor(c, k, &t[k]));
    /* 1. truncate to 0 while the checkpoint is open and the tensors alive */
    CHECK(truncate(path, 0) == 0, "truncate");
    int same = 1;
    for (int k = 0; k < UF_T; k++) {
        fill(want, k);
        same = same && t[k] && memcmp(sp_tensor_data(t[k]), want, UF_N * sizeof *want) == 0 &&
               memcmp(sp_ckpt_bytes(c, k), want, UF_N * sizeof *want) == 0;
    }
    CHECK(same, "%s: values unchanged after the file is truncated", ext);
    /* 2. rewrite it, then overwrite it in place with other bytes */
    sp_ckpt_close(c);
    CHECK(write_file(path, format), "%s: rewritten", ext);
    c = NULL;
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    sp_tensor *u = NULL;
    if (c) CHECK_OK(sp_ckpt_tensor(c, 1, &u));
    sp_ckpt_close(c);   /* the tensor outlives the checkpoint object */
    CHECK(scribble(path), "overwrite in place");
    fill(want, 1);
    CHECK(u && memcmp(sp_tensor_data(u), want, UF_N * sizeof *want) == 0,
          "%s: values unchanged after the file is overwritten in place", ext);
    for (int k = 0; k < UF_T; k++) sp_tensor_free(t[k]);
    sp_tensor_free(u);
    free(want);
    unlink(path);
}

/* the hook: shrink the file to half before the nth read */
static int hook_calls, hook_at, hook_fired;
static off_t hook_size;
/* ck_read_hook gets a read-only fd: open the file again to shrink it */
static const char *hook_path;
static void shrink_path_hook(int fd, uint64_t off) {
    (void)fd; (void)off;
    if (++hook_calls == hook_at) hook_fired = truncate(hook_path, hook_size / 2) == 0 ? 1 : -1;
}

static void during_load(const char *dir, int format, const char *ext) {
    char path[256];
    snprintf(path, sizeof path, "%s/during.%s", dir, ext);
    int fired = 0, refused = 0, named = 0;
    for (int at = 1; at <= 8; at++) {
        CHECK(write_file(path, format), "%s: written", ext);
        hook_path = path; hook_size = file_size(path); hook_calls = 0; hook_at = at; hook_fired = 0;
        ck_read_hook = shrink_path_hook;
        sp_ckpt *c = NULL;
        sp_status st = sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL);
        ck_read_hook = NULL;
        if (hook_fired == 1) {
            fired++;
            if (st != SP_OK) refused++;
            if (st != SP_OK && strstr(sp_last_error(), path) &&
                (strstr(sp_last_error(), "changed while reading") || strstr(sp_last_error(), "truncated")))
                named++;
            else
                fprintf(stderr, "  (%s, truncated before read %d: status %d: %s)\n", ext, at, st, sp_last_error());
        } else {
            CHECK(st == SP_OK && c && sp_ckpt_count(c) == UF_T, "%s: a load the hook did not reach succeeds", ext);
        }
        sp_ckpt_close(c);
    }
    CHECK(fired >= 2, "%s: the file was shrunk during %d loads", ext, fired);
    CHECK(refused == fired, "%s: every load whose file shrank under it fails (%d of %d)", ext, refused, fired);
    CHECK(named == fired, "%s: each error names the file and says it changed/was truncated", ext);
    unlink(path);
}

/* f for a .ckpt and a safetensors file, in a fresh temporary directory */
static void each_format(void (*f)(const char *dir, int format, const char *ext)) {
    char dir[] = "/tmp/spore_underfoot_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    f(dir, SP_CKPT_PROTO, "ckpt");
    f(dir, SP_CKPT_SAFETENSORS, "safetensors");
    rmdir(dir);
}

SUITE(underfoot_after_load) { each_format(after_load); }

SUITE(underfoot_during_load) { each_format(during_load); }

/* The queued reads: a plain .ckpt's contents beside the parse, a whole safetensors file up
 * front (ck_pread_all). The file shrinks after the open measured it, before any queued read
 * (ck_queue_hook). Cut inside the last tensor, only queued reads fail; cut to half, the
 * .ckpt parse meets the end too. Either way one error names the file, and every block is
 * back (live bytes as before). */
static off_t qhook_cut;
static void queue_shrink_hook(int fd) {
    (void)fd;
    hook_fired = qhook_cut < 0 || truncate(hook_path, qhook_cut) == 0 ? 1 : -1;
}

static void queue_shrink(const char *dir, int format, const char *ext) {
    char path[256];
    snprintf(path, sizeof path, "%s/queue.%s", dir, ext);
    for (int cut = 0; cut < 3; cut++) {
        CHECK(write_file(path, format), "%s queue: written", ext);
        off_t n = file_size(path);
        int64_t live0 = 0, live1 = 0, peak = 0, na = 0;
        sp_ckpt_release_cache();
        sp_mem_stats(&live0, &peak, &na);
        hook_path = path; hook_fired = 0;
        qhook_cut = cut == 0 ? -1 : cut == 1 ? n - 100000 : n / 2;
        ck_queue_hook = queue_shrink_hook;
        sp_ckpt *c = NULL;
        sp_status st = sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL);
        ck_queue_hook = NULL;
        CHECK(hook_fired == 1, "%s queue: the hook ran (cut %d)", ext, cut);
        if (cut == 0) {
            int same = st == SP_OK && c && sp_ckpt_count(c) == UF_T;
            float *want = malloc(UF_N * sizeof *want);
            for (int k = 0; same && want && k < UF_T; k++) {
                fill(want, k);
                same = sp_ckpt_nbytes(c, k) == UF_N * sizeof(float) &&
                       memcmp(sp_ckpt_bytes(c, k), want, UF_N * sizeof(float)) == 0;
            }
            free(want);
            CHECK(same, "%s queue: an untouched file loads through the queue with every value (%d: %s)", ext,
                  st, st ? sp_last_error() : "");
        } else {
            const char *e = sp_last_error();
            CHECK(st == SP_EIO && strstr(e, path) && strstr(e, "changed while reading: it ends at byte"),
                  "%s queue: cut to %lld of %lld bytes: one error names the file (%d: %s)", ext,
                  (long long)qhook_cut, (long long)n, st, e);
            CHECK(c == NULL, "%s queue: no checkpoint handed out (cut %d)", ext, cut);
        }
        sp_ckpt_close(c);
        sp_ckpt_release_cache();
        sp_mem_stats(&live1, &peak, &na);
        CHECK(live1 == live0, "%s queue: every block returned (cut %d: %lld bytes live, %lld before)", ext, cut,
              (long long)live1, (long long)live0);
    }
    unlink(path);
}

SUITE(underfoot_queue_shrink) { each_format(queue_shrink); }

SUITE(underfoot_not_regular) {
    char dir[] = "/tmp/spore_underfoot_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char fifo[256];
    snprintf(fifo, sizeof fifo, "%s/pipe.ckpt", dir);
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    /* a FIFO with no writer: opening it must not block */
    sp_ckpt *c = NULL;
    sp_status st = sp_ckpt_open(&c, fifo, SP_CKPT_AUTO, 0, NULL, 0, NULL);
    CHECK(st != SP_OK && !c && strstr(sp_last_error(), fifo) && strstr(sp_last_error(), "FIFO"),
          "ckpt open of a FIFO refused: %s", sp_last_error());
    sp_tensor *t = NULL;
    st = sp_idx_load(&t, fifo);
    CHECK(st != SP_OK && !t && strstr(sp_last_error(), fifo) && strstr(sp_last_error(), "FIFO"),
          "idx load of a FIFO refused: %s", sp_last_error());
    st = sp_ckpt_open(&c, dir, SP_CKPT_AUTO, 0, NULL, 0, NULL);
    CHECK(st != SP_OK && !c && strstr(sp_last_error(), dir) && strstr(sp_last_error(), "directory"),
          "ckpt open of a directory refused: %s", sp_last_error());
    st = sp_idx_load(&t, dir);
    CHECK(st != SP_OK && !t && strstr(sp_last_error(), "directory"), "idx load of a directory refused: %s",
          sp_last_error());
    st = sp_ckpt_open(&c, "/dev/null", SP_CKPT_AUTO, 0, NULL, 0, NULL);
    CHECK(st != SP_OK && !c && strstr(sp_last_error(), "device"), "ckpt open of a device refused: %s",
          sp_last_error());
    unlink(fifo);
    rmdir(dir);
}

/* gzip member of data into out (appended at *n) */
static size_t gz_member(const unsigned char *data, size_t n, unsigned char *out, size_t cap) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    zs.next_in = (unsigned char *)data; zs.avail_in = (uInt)n;
    zs.next_out = out; zs.avail_out = (uInt)cap;
    int z = deflate(&zs, Z_FINISH);
    size_t r = z == Z_STREAM_END ? cap - zs.avail_out : 0;
    deflateEnd(&zs);
    return r;
}

static int write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

SUITE(underfoot_gzip_trailing) {
    char dir[] = "/tmp/spore_underfoot_XXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    /* idx: 1-D uint8, 1000 labels */
    unsigned char idx[8 + 1000];
    idx[0] = 0; idx[1] = 0; idx[2] = 0x08; idx[3] = 1;
    idx[4] = 0; idx[5] = 0; idx[6] = 1000 >> 8; idx[7] = 1000 & 0xff;
    for (int i = 0; i < 1000; i++) idx[8 + i] = (unsigned char)(i % 10);
    unsigned char gz[4096];
    size_t g = gz_member(idx, sizeof idx, gz, sizeof gz);
    CHECK(g > 0, "deflate");
    char path[256];
    snprintf(path, sizeof path, "%s/labels.gz", dir);
    sp_tensor *t = NULL;
    CHECK(write_bytes(path, gz, g), "write");
    CHECK_OK(sp_idx_load(&t, path));
    CHECK(t && sp_tensor_numel(t) == 1000 && ((unsigned char *)sp_tensor_data(t))[999] == 9, "clean gzip loads");
    sp_tensor_free(t); t = NULL;
    /* trailing garbage */
    unsigned char bad[4096 + 16];
    memcpy(bad, gz, g);
    memcpy(bad + g, "garbage!", 8);
    CHECK(write_bytes(path, bad, g + 8), "write");
    sp_status st = sp_idx_load(&t, path);
    CHECK(st != SP_OK && !t && strstr(sp_last_error(), path) && strstr(sp_last_error(), "trailing garbage"),
          "gzip with trailing garbage refused: %s", sp_last_error());
    /* one trailing byte, and trailing zeros, are garbage as well */
    CHECK(write_bytes(path, bad, g + 1), "write");
    st = sp_idx_load(&t, path);
    CHECK(st != SP_OK && strstr(sp_last_error(), "trailing garbage"), "one trailing byte refused: %s", sp_last_error());
    memset(bad + g, 0, 8);
    CHECK(write_bytes(path, bad, g + 8), "write");
    st = sp_idx_load(&t, path);
    CHECK(st != SP_OK && strstr(sp_last_error(), "trailing garbage"), "trailing zeros refused: %s", sp_last_error());
    /* two members (gzip(1) concatenation) are one stream */
    size_t g1 = gz_member(idx, 500, bad, sizeof bad);
    size_t g2 = gz_member(idx + 500, sizeof idx - 500, bad + g1, sizeof bad - g1);
    CHECK(g1 && g2 && write_bytes(path, bad, g1 + g2), "write 2 members");
    t = NULL;
    CHECK_OK(sp_idx_load(&t, path));
    CHECK(t && sp_tensor_numel(t) == 1000 && ((unsigned char *)sp_tensor_data(t))[501] == 1,
          "concatenated gzip members load");
    sp_tensor_free(t); t = NULL;
    /* a member cut short */
    CHECK(write_bytes(path, gz, g - 5), "write");
    st = sp_idx_load(&t, path);
    CHECK(st != SP_OK && strstr(sp_last_error(), "truncated"), "truncated gzip refused: %s", sp_last_error());
    unlink(path);
    rmdir(dir);
    /* real MNIST / Fashion-MNIST files still load */
    const char *real[] = {"/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
                          "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"};
    for (int i = 0; i < 2; i++) {
        if (access(real[i], R_OK) != 0) continue;
        t = NULL;
        CHECK_OK(sp_idx_load(&t, real[i]));
        int64_t sh[SP_MAX_DIMS] = {0};
        CHECK(t && sp_tensor_shape(t, sh) >= 1 && sh[0] == 10000, "%s: 10000 rows", real[i]);
        sp_tensor_free(t);
    }
}

/* protobuf bytes, by hand: Value{tag, tensor{dims, tensor_type, tensor_content}} */
static size_t put_varint(unsigned char *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) { p[n++] = (unsigned char)(v | 0x80); v >>= 7; }
    p[n++] = (unsigned char)v;
    return n;
}
static size_t put_value(unsigned char *out, const char *tag, int64_t dim, const void *content, size_t len) {
    unsigned char tp[256], val[512];
    size_t t = 0, v = 0, o = 0;
    tp[t++] = 0x08; t += put_varint(tp + t, (uint64_t)dim);
    tp[t++] = 0x12; t += put_varint(tp + t, 7); memcpy(tp + t, "Float32", 7); t += 7;
    tp[t++] = 0x1a; t += put_varint(tp + t, len); if (len) { memcpy(tp + t, content, len); t += len; }
    val[v++] = 0x0a; v += put_varint(val + v, strlen(tag)); memcpy(val + v, tag, strlen(tag)); v += strlen(tag);
    val[v++] = 0x12; v += put_varint(val + v, t); memcpy(val + v, tp, t); v += t;
    out[o++] = 0x0a; o += put_varint(out + o, v); memcpy(out + o, val, v); o += v;
    return o;
}

SUITE(underfoot_empty_slice) {
    /* w: 4 floats in three slices, the middle one empty (content of 0 bytes) */
    float a[4] = {1, 2, 3, 4};
    unsigned char buf[2048];
    size_t n = 0;
    n += put_value(buf + n, "w", 4, a, 8);
    n += put_value(buf + n, "w", 4, NULL, 0);
    n += put_value(buf + n, "w", 4, a + 2, 8);
    sp_ckpt *c = NULL;
    CHECK_OK(sp_ckpt_open_memory(&c, buf, n, "slices.ckpt", SP_CKPT_AUTO, 0, NULL, 0, NULL));
    CHECK(c && sp_ckpt_count(c) == 1 && sp_ckpt_nbytes(c, 0) == 16 && memcmp(sp_ckpt_bytes(c, 0), a, 16) == 0,
          "an empty middle slice joins cleanly");
    sp_ckpt_close(c);
    /* the same from a file (the streaming reader) */
    char path[] = "/tmp/spore_underfoot_slices_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, buf, n) == (ssize_t)n, "write");
    if (fd >= 0) close(fd);
    c = NULL;
    CHECK_OK(sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    CHECK(c && sp_ckpt_count(c) == 1 && memcmp(sp_ckpt_bytes(c, 0), a, 16) == 0, "the same from a file");
    sp_ckpt_close(c);
    unlink(path);
}

/* The file reader (pread, record by record) and the memory reader (sp_ckpt_open_memory)
 * must agree on every prefix and on byte flips of real files: same status, and on
 * success the same entries with the same bytes. */
static int same_ckpt(const sp_ckpt *a, const sp_ckpt *b) {
    if (sp_ckpt_count(a) != sp_ckpt_count(b) || sp_ckpt_format(a) != sp_ckpt_format(b)) return 0;
    for (int64_t i = 0; i < sp_ckpt_count(a); i++)
        if (strcmp(sp_ckpt_name(a, i), sp_ckpt_name(b, i)) != 0 || sp_ckpt_nbytes(a, i) != sp_ckpt_nbytes(b, i) ||
            (sp_ckpt_nbytes(a, i) && memcmp(sp_ckpt_bytes(a, i), sp_ckpt_bytes(b, i), sp_ckpt_nbytes(a, i)) != 0))
            return 0;
    return 1;
}

static unsigned char *slurp_file(const char *p, size_t *n) {
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

SUITE(underfoot_file_vs_memory) {
    const char *files[] = {"spec/fixtures/ms_small.ckpt", "spec/fixtures/ms_small_crc.ckpt",
                           "spec/fixtures/ms_small.safetensors", "spec/fixtures/ms_bf16.ckpt"};
    char path[] = "/tmp/spore_underfoot_fvm_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { CHECK(0, "mkstemp"); return; }
    close(fd);
    for (int k = 0; k < 4; k++) {
        size_t n = 0;
        unsigned char *b = slurp_file(files[k], &n);
        if (!b || !n) { free(b); continue; }
        int agree = 1, cases = 0, oks = 0;
        size_t step = n / 97 + 1;
        for (int pass = 0; pass < 2 && agree; pass++)
            for (size_t m = 1; m <= n && agree; m += step) {
                /* pass 0: the prefix of m bytes; pass 1: the whole file with byte m-1 flipped */
                size_t len = pass == 0 ? m : n;
                if (pass == 1) b[m - 1] ^= 0x5a;
                for (int flags = 0; flags <= SP_CKPT_CRC && agree; flags += SP_CKPT_CRC) {
                    if (!write_bytes(path, b, len)) { agree = 0; break; }
                    sp_ckpt *cf = NULL, *cm = NULL;
                    sp_status sf = sp_ckpt_open(&cf, path, SP_CKPT_AUTO, flags, NULL, 0, NULL);
                    sp_status sm = sp_ckpt_open_memory(&cm, b, len, path, SP_CKPT_AUTO, flags, NULL, 0, NULL);
                    cases++;
                    if (sf != sm || (sf == SP_OK && !same_ckpt(cf, cm))) {
                        agree = 0;
                        fprintf(stderr, "  %s: %s %zu, flags %d: file %d, memory %d (%s)\n", files[k],
                                pass ? "flip at" : "prefix", m, flags, sf, sm, sp_last_error());
                    }
                    oks += sf == SP_OK;
                    sp_ckpt_close(cf);
                    sp_ckpt_close(cm);
                }
                if (pass == 1) b[m - 1] ^= 0x5a;
            }
        CHECK(agree && oks > 0, "%s: the file and memory readers agree on %d damaged copies (%d load)", files[k],
              cases, oks);
        free(b);
    }
    unlink(path);
}

/* many small records across several 1 MiB read-buffer refills, and records larger than
 * the buffer in between: the file reader still gives the memory reader's result */
SUITE(underfoot_refills) {
    char path[] = "/tmp/spore_underfoot_refill_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) { CHECK(0, "mkstemp"); return; }
    close(fd);
    sp_ckpt_writer *w = NULL;
    CHECK_OK(sp_ckpt_writer_open(&w, path, SP_CKPT_PROTO, SP_CKPT_CRC, NULL, 0, NULL));
    if (!w) return;
    float *v = malloc(400000 * sizeof *v);
    int added = v != NULL;
    for (int k = 0; k < 700 && added; k++) {
        int64_t sh[1] = {k % 100 == 50 ? 400000 : 1000 + k};   /* 7 records of 1.6 MB */
        for (int64_t i = 0; i < sh[0]; i++) v[i] = (float)(k + i);
        sp_tensor *t = NULL;
        char name[32];
        snprintf(name, sizeof name, "t%03d", k);
        added = sp_tensor_from_data(&t, SP_FLOAT32, 1, sh, v, (size_t)sh[0] * sizeof *v) == SP_OK &&
                sp_ckpt_writer_add(w, name, t) == SP_OK;
        sp_tensor_free(t);
    }
    free(v);
    CHECK(added, "700 tensors added: %s", sp_last_error());
    CHECK_OK(sp_ckpt_writer_commit(w));
    size_t n = 0;
    unsigned char *b = slurp_file(path, &n);
    sp_ckpt *cf = NULL, *cm = NULL;
    CHECK_OK(sp_ckpt_open(&cf, path, SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    CHECK_OK(sp_ckpt_open_memory(&cm, b, n, path, SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    CHECK(cf && cm && sp_ckpt_count(cf) == 700 && same_ckpt(cf, cm) && sp_ckpt_crc(cf, NULL) == 2,
          "a %zu-byte file of 700 records: file reader == memory reader, CRC verified", n);
    sp_ckpt_close(cf); sp_ckpt_close(cm);
    /* a flipped byte deep in the file: the CRC names it, from the file as from memory */
    b[n / 2] ^= 1;
    CHECK(write_bytes(path, b, n), "write");
    sp_status sf = sp_ckpt_open(&cf, path, SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL);
    CHECK(sf == SP_ECRC && strstr(sp_last_error(), "CRC mismatch"), "file reader: CRC mismatch (%s)", sp_last_error());
    free(b);
    unlink(path);
}
