/* test_ckpt.c — checkpoint IO at the C level: the real MindSpore LeNet checkpoint and
 * the MindSpore-written goldens, truncation at every byte offset, flipped bytes,
 * crafted malformed values, CRC, encryption, writer round trips. */
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); b = NULL; }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static const char *shared(const char *rel, char *buf, size_t n) {
    const char *d = getenv("SPORE_FIXTURES");
    snprintf(buf, n, "%s/%s", d && *d ? d : "../shared/fixtures", rel);
    return buf;
}

static int64_t find(const sp_ckpt *c, const char *name) {
    for (int64_t i = 0; i < sp_ckpt_count(c); i++) if (strcmp(sp_ckpt_name(c, i), name) == 0) return i;
    return -1;
}

/* Open a buffer; the status must be OK or a message naming the file. */
static const char *g_key, *g_mode;
static int open_mem_ok(const unsigned char *b, size_t n, int *crashless) {
    sp_ckpt *c = NULL;
    sp_status st = sp_ckpt_open_memory(&c, b, n, "probe.ckpt", SP_CKPT_AUTO, 0, g_key, g_key ? 16 : 0, g_mode);
    if (st) {
        if (!strstr(sp_last_error(), "probe.ckpt")) { *crashless = 0; fprintf(stderr, "  message lacks the file: %s\n", sp_last_error()); }
        return 0;
    }
    for (int64_t i = 0; i < sp_ckpt_count(c); i++) {   /* touch every tensor */
        sp_tensor *t = NULL;
        if (sp_ckpt_dtype(c, i) >= 0 && sp_ckpt_tensor(c, i, &t) == SP_OK) {
            volatile unsigned char s = 0;
            const unsigned char *p = sp_tensor_data(t);
            for (size_t k = 0; k < sp_tensor_nbytes(t); k += 61) s ^= p[k];
            sp_tensor_free(t);
        }
    }
    sp_ckpt_close(c);
    return 1;
}

SUITE(ckpt_lenet_real) {
    char p[512];
    shared("mindspore/checkpoint_lenet-1_1875.ckpt", p, sizeof p);
    if (access(p, R_OK) != 0) { fprintf(stderr, "  SKIP ckpt_lenet_real: fixture missing: %s\n", p); return; }
    sp_ckpt *c = NULL;
    CHECK_OK(sp_ckpt_open(&c, p, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    if (!c) return;
    CHECK(sp_ckpt_count(c) == 18, "18 entries, got %lld", (long long)sp_ckpt_count(c));
    CHECK(sp_ckpt_format(c) == SP_CKPT_PROTO, "format");
    int64_t i = find(c, "conv1.weight"), sh[8];
    CHECK(i >= 0 && sp_ckpt_shape(c, i, sh) == 4 && sh[0] == 6 && sh[1] == 1 && sh[2] == 5 && sh[3] == 5, "conv1.weight [6,1,5,5]");
    i = find(c, "learning_rate");
    CHECK(i >= 0 && sp_ckpt_shape(c, i, sh) == 0 && sp_ckpt_dtype(c, i) == SP_FLOAT32, "learning_rate is a 0-d float32 (dims [0])");
    i = find(c, "fc3.bias");
    CHECK(i >= 0 && sp_ckpt_nbytes(c, i) == 40, "fc3.bias 40 bytes");
    sp_ckpt_close(c);
}

static void truncations(const char *path, int every, const char *label) {
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    if (!b) { fprintf(stderr, "  SKIP %s: fixture missing: %s\n", label, path); return; }
    int named = 1, full_ok = 0, trunc_ok = 0, tested = 0;
    full_ok = open_mem_ok(b, n, &named);
    /* A .ckpt has no end marker: a prefix that ends exactly between two values is a
     * valid, shorter checkpoint. Every other prefix must fail. */
    char *bound = calloc(n + 1, 1);
    int plain = bound && n > 0 && b[0] == 0x0a;
    for (size_t pos = 0; plain && pos < n;) {
        bound[pos] = 1;
        size_t q = pos + 1; uint64_t len = 0; int s = 0;
        while (q < n && (b[q] & 0x80)) { len |= (uint64_t)(b[q] & 0x7f) << s; s += 7; q++; }
        if (q >= n) break;
        len |= (uint64_t)b[q] << s; q++;
        pos = q + len;
    }
    /* SPORE_FULL_TRUNCATION=1 tests every prefix of large files too (slow: quadratic). */
    const char *full = getenv("SPORE_FULL_TRUNCATION");
    if (full && *full == '1') every = 1;
    size_t step = every ? 1 : 997;
    for (size_t k = 0; k < n; k += step) { tested++; if (open_mem_ok(b, k, &named) && !(plain && bound[k])) trunc_ok++; }
    if (!every) for (size_t k = n > 4096 ? n - 4096 : 0; k < n; k++) { tested++; if (open_mem_ok(b, k, &named) && !(plain && bound[k])) trunc_ok++; }
    CHECK(full_ok, "%s: the whole file loads", label);
    CHECK(trunc_ok == 0, "%s: %d of %d truncated prefixes (not at a value boundary) loaded without error", label, trunc_ok, tested);
    CHECK(named, "%s: every error names the file", label);
    free(bound);
    free(b);
}

/* Every byte offset of a file: record-local equivalence for large files. A prefix
 * of length k fails in the record that contains k; the records before it parse the
 * same as in the whole file. So we check (a) every prefix of every small file,
 * (b) for the LeNet file: every prefix within 4 KiB of the start and end and a
 * stride-997 sample of the rest, plus (c) every offset k by parsing the suffix that
 * starts at k's record boundary and ends at k. */
static void record_local(const char *path, const char *label) {
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    if (!b) { fprintf(stderr, "  SKIP %s: fixture missing: %s\n", label, path); return; }
    size_t starts[4096]; int ns = 0; size_t pos = 0;
    while (pos < n && ns < 4096) {   /* walk the top-level framing: 0x0a varint(len) */
        starts[ns++] = pos;
        size_t q = pos + 1; uint64_t len = 0; int s = 0;
        while (q < n && (b[q] & 0x80)) { len |= (uint64_t)(b[q] & 0x7f) << s; s += 7; q++; }
        len |= (uint64_t)b[q] << s; q++;
        pos = q + len;
    }
    int named = 1, loaded = 0, tested = 0;
    for (int r = 0; r < ns; r++) {
        size_t end = r + 1 < ns ? starts[r + 1] : n;
        for (size_t k = starts[r] + 1; k < end; k++) { loaded += open_mem_ok(b + starts[r], k - starts[r], &named); tested++; }
    }
    CHECK(ns > 1 && tested == (int)(n - (size_t)ns), "%s: %d offsets tested over %d records", label, tested, ns);
    CHECK(loaded == 0, "%s: %d record-truncations loaded", label, loaded);
    CHECK(named, "%s: every error names the file", label);
    free(b);
}

SUITE(ckpt_truncation_every_offset) {
    const char *small[] = {"spec/fixtures/ms_small.ckpt", "spec/fixtures/ms_small_crc.ckpt", "spec/fixtures/ms_bf16.ckpt",
                           "spec/fixtures/ms_momentum.ckpt", "spec/fixtures/ms_adam.ckpt", "spec/fixtures/hand_packed.ckpt",
                           "spec/fixtures/hand_unpacked.ckpt", "spec/fixtures/ms_small.safetensors",
                           "spec/fixtures/ms_small_crc.safetensors"};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) truncations(small[i], 1, small[i]);
    const char *enc[3] = {"spec/fixtures/ms_enc_gcm.ckpt", "spec/fixtures/ms_enc_cbc.ckpt", "spec/fixtures/ms_enc_sm4.ckpt"};
    const char *modes[3] = {"AES-GCM", "AES-CBC", "SM4-CBC"};
    g_key = "0123456789abcdef";
    for (int i = 0; i < 3; i++) { g_mode = modes[i]; truncations(enc[i], 1, enc[i]); }
    g_key = g_mode = NULL;
    char p[512];
    shared("mindspore/checkpoint_lenet-1_1875.ckpt", p, sizeof p);
    truncations(p, 0, "lenet (prefix sample)");
    record_local(p, "lenet (every offset, record-local)");
}

SUITE(ckpt_flipped_bytes) {
    size_t n = 0;
    unsigned char *b = slurp("spec/fixtures/ms_bf16.ckpt", &n);
    if (!b) return;
    int named = 1;
    for (size_t k = 0; k < n; k++)
        for (int bit = 0; bit < 8; bit += 3) {
            b[k] ^= (unsigned char)(1u << bit);
            open_mem_ok(b, n, &named);  /* may load (content bytes) or fail; never crash */
            b[k] ^= (unsigned char)(1u << bit);
        }
    CHECK(named, "flipped bytes: errors name the file");
    free(b);
}

/* Hand-built values: key 0x0a, len, Value{tag, tensor{dims.., type, content}}. */
static size_t put_varint(unsigned char *p, uint64_t v) {
    size_t k = 0;
    do { p[k++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
    return k;
}
static size_t build(unsigned char *out, const char *tag, const int64_t *dims, int nd, const char *type,
                    const void *content, size_t clen) {
    unsigned char tp[512], val[700];
    size_t t = 0, v = 0, o = 0;
    for (int i = 0; i < nd; i++) { tp[t++] = 0x08; t += put_varint(tp + t, (uint64_t)dims[i]); }
    tp[t++] = 0x12; t += put_varint(tp + t, strlen(type)); memcpy(tp + t, type, strlen(type)); t += strlen(type);
    tp[t++] = 0x1a; t += put_varint(tp + t, clen); memcpy(tp + t, content, clen); t += clen;
    val[v++] = 0x0a; v += put_varint(val + v, strlen(tag)); memcpy(val + v, tag, strlen(tag)); v += strlen(tag);
    val[v++] = 0x12; v += put_varint(val + v, t); memcpy(val + v, tp, t); v += t;
    out[o++] = 0x0a; o += put_varint(out + o, v); memcpy(out + o, val, v); o += v;
    return o;
}

static void expect_fail(const unsigned char *b, size_t n, const char *needle, const char *what) {
    sp_ckpt *c = NULL;
    sp_status st = sp_ckpt_open_memory(&c, b, n, "bad.ckpt", SP_CKPT_AUTO, 0, NULL, 0, NULL);
    CHECK(st != SP_OK && strstr(sp_last_error(), "bad.ckpt") && strstr(sp_last_error(), needle),
          "%s: status %d, message '%s' should mention '%s'", what, st, sp_last_error(), needle);
    sp_ckpt_close(c);
}

SUITE(ckpt_malformed_values) {
    unsigned char b[2048];
    float f[6] = {1, 2, 3, 4, 5, 6};
    int64_t d23[2] = {2, 3}, d24[2] = {2, 4}, dneg[2] = {-1, 6};
    int64_t dhuge[2] = {INT64_MAX / 2, 4}, dbig[3] = {1 << 20, 1 << 20, 1 << 20};
    size_t n = build(b, "w", d23, 2, "Float32", f, sizeof f);
    sp_ckpt *c = NULL;
    CHECK_OK(sp_ckpt_open_memory(&c, b, n, "ok.ckpt", SP_CKPT_AUTO, 0, NULL, 0, NULL));
    sp_ckpt_close(c);
    n = build(b, "w", d24, 2, "Float32", f, sizeof f);
    expect_fail(b, n, "tensor 'w'", "content shorter than dims");
    n = build(b, "w", d23, 2, "Float32", f, 20);
    expect_fail(b, n, "expected 24", "content not a multiple");
    n = build(b, "w", dneg, 2, "Float32", f, sizeof f);
    expect_fail(b, n, "tensor 'w'", "negative dim");
    n = build(b, "w", dhuge, 2, "Float32", f, sizeof f);
    expect_fail(b, n, "overflows", "overflowing product");
    n = build(b, "w", dbig, 3, "Float32", f, sizeof f);
    expect_fail(b, n, "larger than the file", "huge dims");
    int64_t d9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 6};
    n = build(b, "w", d9, 9, "Float32", f, sizeof f);
    expect_fail(b, n, "9 dims", "too many dims");
    n = build(b, "w", d23, 2, "Float33", f, sizeof f);   /* unknown dtype: kept without a tensor */
    CHECK_OK(sp_ckpt_open_memory(&c, b, n, "unk.ckpt", SP_CKPT_AUTO, 0, NULL, 0, NULL));
    CHECK(c && sp_ckpt_dtype(c, 0) == -1 && strcmp(sp_ckpt_type(c, 0), "Float33") == 0, "unknown dtype kept as raw");
    sp_tensor *t = NULL;
    CHECK(c && sp_ckpt_tensor(c, 0, &t) != SP_OK && strstr(sp_last_error(), "Float33"), "no tensor for an unknown dtype");
    sp_ckpt_close(c);
    expect_fail((const unsigned char *)"hello world, not a checkpoint", 29, "not a MindSpore checkpoint", "text file");
    expect_fail(b, 0, "empty file", "empty");
    /* CRC */
    size_t m = build(b, "w", d23, 2, "Float32", f, sizeof f);
    uint32_t crc = sp_crc32(0, b, m);
    memcpy(b + m, "crc_num", 7);
    memset(b + m + 7, 0, 10);
    for (int i = 0; i < 4; i++) b[m + 16 - i] = (unsigned char)(crc >> (8 * i));
    CHECK_OK(sp_ckpt_open_memory(&c, b, m + 17, "crc.ckpt", SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    uint32_t got = 0;
    CHECK(c && sp_ckpt_crc(c, &got) == 2 && got == crc, "crc verified");
    sp_ckpt_close(c);
    b[m - 1] ^= 1;
    sp_status st = sp_ckpt_open_memory(&c, b, m + 17, "crc.ckpt", SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL);
    CHECK(st == SP_ECRC && strstr(sp_last_error(), "CRC mismatch"), "wrong CRC: %s", sp_last_error());
    sp_ckpt_close(c);
}

SUITE(ckpt_goldens) {
    sp_ckpt *c = NULL;
    if (access("spec/fixtures/ms_small.ckpt", R_OK) != 0) { fprintf(stderr, "  SKIP ckpt_goldens: spec/fixtures missing\n"); return; }
    CHECK_OK(sp_ckpt_open(&c, "spec/fixtures/ms_small.ckpt", SP_CKPT_AUTO, 0, NULL, 0, NULL));
    CHECK(c && sp_ckpt_count(c) == 12, "ms_small: 12 entries");
    int64_t i = c ? find(c, "note") : -1;
    CHECK(i >= 0 && strcmp(sp_ckpt_type(c, i), "str") == 0 && sp_ckpt_nbytes(c, i) == 20, "note is a 5-char str");
    size_t plain_n = 0;
    unsigned char *plain = slurp("spec/fixtures/ms_small.ckpt", &plain_n);
    const char *modes[3] = {"AES-GCM", "AES-CBC", "SM4-CBC"};
    const char *files[3] = {"spec/fixtures/ms_enc_gcm.ckpt", "spec/fixtures/ms_enc_cbc.ckpt", "spec/fixtures/ms_enc_sm4.ckpt"};
    for (int k = 0; k < 3; k++) {
        sp_ckpt *e = NULL;
        CHECK_OK(sp_ckpt_open(&e, files[k], SP_CKPT_AUTO, 0, "0123456789abcdef", 16, modes[k]));
        int same = e && sp_ckpt_count(e) == sp_ckpt_count(c);
        for (int64_t j = 0; same && j < sp_ckpt_count(c); j++)
            same = sp_ckpt_nbytes(e, j) == sp_ckpt_nbytes(c, j) && memcmp(sp_ckpt_bytes(e, j), sp_ckpt_bytes(c, j), sp_ckpt_nbytes(c, j)) == 0;
        CHECK(same, "%s decrypts to ms_small.ckpt's tensors", files[k]);
        sp_ckpt_close(e);
        sp_status st = sp_ckpt_open(&e, files[k], SP_CKPT_AUTO, 0, "0123456789abcdeX", 16, modes[k]);
        CHECK(st != SP_OK && strstr(sp_last_error(), files[k]), "%s: wrong key fails: %s", files[k], sp_last_error());
        st = sp_ckpt_open(&e, files[k], SP_CKPT_AUTO, 0, NULL, 0, NULL);
        CHECK(st == SP_ECRYPTO && strstr(sp_last_error(), "dec_key"), "%s: no key: %s", files[k], sp_last_error());
    }
    sp_ckpt *s = NULL;
    CHECK_OK(sp_ckpt_open(&s, "spec/fixtures/ms_small_crc.safetensors", SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    CHECK(s && sp_ckpt_format(s) == SP_CKPT_SAFETENSORS && sp_ckpt_crc(s, NULL) == 2, "safetensors crc_num verified (MindSpore's quirk)");
    i = s ? find(s, "fc.weight") : -1;
    int64_t j = find(c, "fc.weight");
    CHECK(i >= 0 && j >= 0 && sp_ckpt_nbytes(s, i) == sp_ckpt_nbytes(c, j) &&
          memcmp(sp_ckpt_bytes(s, i), sp_ckpt_bytes(c, j), sp_ckpt_nbytes(c, j)) == 0, "safetensors fc.weight == ckpt fc.weight");
    sp_tensor *t = NULL;
    if (i >= 0) {
        CHECK_OK(sp_ckpt_tensor(s, i, &t));
        CHECK(t && sp_tensor_data(t) == sp_ckpt_bytes(s, i), "safetensors tensor is a zero-copy view");
    }
    sp_ckpt_close(s);
    CHECK(t && sp_tensor_numel(t) == 80, "view outlives the closed checkpoint");
    sp_tensor_free(t);
    CHECK_OK(sp_ckpt_open(&s, "spec/fixtures/ms_small_crc.ckpt", SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    CHECK(s && sp_ckpt_crc(s, NULL) == 2, "ckpt crc verified");
    sp_ckpt_close(s);
    free(plain);
    sp_ckpt_close(c);
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    int r = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x); free(y);
    return r;
}

SUITE(ckpt_writer_roundtrip) {
    char dir[] = "/tmp/spore_ckpt_XXXXXX";
    if (!mkdtemp(dir)) return;
    char p1[256], p2[256], p3[256];
    snprintf(p1, sizeof p1, "%s/a.ckpt", dir); snprintf(p2, sizeof p2, "%s/a.safetensors", dir); snprintf(p3, sizeof p3, "%s/b.ckpt", dir);
    sp_ckpt *c = NULL;
    if (sp_ckpt_open(&c, "spec/fixtures/ms_bf16.ckpt", SP_CKPT_AUTO, 0, NULL, 0, NULL) != SP_OK) return;
    /* ckpt -> ckpt with a tiny slice size (every tensor split), -> safetensors -> ckpt */
    sp_ckpt_writer *w = NULL;
    CHECK_OK(sp_ckpt_writer_open(&w, p1, SP_CKPT_PROTO, SP_CKPT_CRC, NULL, 0, NULL));
    sp_ckpt_writer_set_slice(w, 5);
    for (int64_t i = 0; i < sp_ckpt_count(c); i++) {
        int64_t sh[8]; int nd = sp_ckpt_shape(c, i, sh);
        CHECK_OK(sp_ckpt_writer_add_raw(w, sp_ckpt_name(c, i), sp_ckpt_type(c, i), nd, sh, sp_ckpt_bytes(c, i), sp_ckpt_nbytes(c, i)));
    }
    CHECK_OK(sp_ckpt_writer_commit(w));
    sp_ckpt *r = NULL;
    CHECK_OK(sp_ckpt_open(&r, p1, SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    int same = r && sp_ckpt_count(r) == sp_ckpt_count(c);
    for (int64_t i = 0; same && i < sp_ckpt_count(c); i++)
        same = strcmp(sp_ckpt_name(r, i), sp_ckpt_name(c, i)) == 0 && sp_ckpt_nbytes(r, i) == sp_ckpt_nbytes(c, i) &&
               memcmp(sp_ckpt_bytes(r, i), sp_ckpt_bytes(c, i), sp_ckpt_nbytes(c, i)) == 0;
    CHECK(same, "sliced ckpt round trip is bit-exact");
    /* safetensors (str entries cannot go there) */
    CHECK_OK(sp_ckpt_writer_open(&w, p2, SP_CKPT_SAFETENSORS, SP_CKPT_CRC, NULL, 0, NULL));
    for (int64_t i = 0; i < sp_ckpt_count(r); i++) {
        sp_tensor *t = NULL;
        if (sp_ckpt_dtype(r, i) < 0) continue;
        CHECK_OK(sp_ckpt_tensor(r, i, &t));
        CHECK_OK(sp_ckpt_writer_add(w, sp_ckpt_name(r, i), t));
        sp_tensor_free(t);
    }
    CHECK_OK(sp_ckpt_writer_commit(w));
    sp_ckpt *s = NULL;
    CHECK_OK(sp_ckpt_open(&s, p2, SP_CKPT_AUTO, SP_CKPT_CRC, NULL, 0, NULL));
    CHECK(s && strstr(sp_ckpt_metadata(s), "\"format\":\"ms\""), "metadata format ms");
    CHECK_OK(sp_ckpt_writer_open(&w, p3, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    for (int64_t i = 0; s && i < sp_ckpt_count(s); i++) {
        sp_tensor *t = NULL;
        CHECK_OK(sp_ckpt_tensor(s, i, &t));
        CHECK_OK(sp_ckpt_writer_add(w, sp_ckpt_name(s, i), t));
        sp_tensor_free(t);
    }
    CHECK_OK(sp_ckpt_writer_commit(w));
    sp_ckpt *q = NULL;
    CHECK_OK(sp_ckpt_open(&q, p3, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    int64_t k = 0;
    same = q != NULL;
    for (int64_t i = 0; same && i < sp_ckpt_count(c); i++) {
        if (sp_ckpt_dtype(c, i) < 0) continue;
        same = k < sp_ckpt_count(q) && strcmp(sp_ckpt_name(q, k), sp_ckpt_name(c, i)) == 0 &&
               sp_ckpt_nbytes(q, k) == sp_ckpt_nbytes(c, i) && memcmp(sp_ckpt_bytes(q, k), sp_ckpt_bytes(c, i), sp_ckpt_nbytes(c, i)) == 0;
        k++;
    }
    CHECK(same && k == sp_ckpt_count(q), "ckpt -> safetensors -> ckpt keeps order and bytes");
    sp_ckpt_close(q); sp_ckpt_close(s); sp_ckpt_close(r);
    /* encryption round trip, every mode */
    const char *modes[3] = {"AES-GCM", "AES-CBC", "SM4-CBC"};
    for (int m = 0; m < 3; m++) {
        CHECK_OK(sp_ckpt_writer_open(&w, p1, SP_CKPT_PROTO, SP_CKPT_CRC, "0123456789abcdef", 16, modes[m]));
        for (int64_t i = 0; i < sp_ckpt_count(c); i++) {
            int64_t sh[8]; int nd = sp_ckpt_shape(c, i, sh);
            CHECK_OK(sp_ckpt_writer_add_raw(w, sp_ckpt_name(c, i), sp_ckpt_type(c, i), nd, sh, sp_ckpt_bytes(c, i), sp_ckpt_nbytes(c, i)));
        }
        CHECK_OK(sp_ckpt_writer_commit(w));
        CHECK_OK(sp_ckpt_open(&r, p1, SP_CKPT_AUTO, SP_CKPT_CRC, "0123456789abcdef", 16, modes[m]));
        CHECK(r && sp_ckpt_count(r) == sp_ckpt_count(c) && strcmp(sp_ckpt_encryption(r), modes[m]) == 0, "%s round trip", modes[m]);
        sp_ckpt_close(r);
    }
    /* abort keeps the previous file */
    CHECK_OK(sp_ckpt_writer_open(&w, p3, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    char before[256]; snprintf(before, sizeof before, "%s/b.copy", dir);
    CHECK_OK(sp_ckpt_writer_add_raw(w, "x", "Float32", 0, NULL, "\0\0\0\0", 4));
    sp_ckpt_writer_abort(w);
    CHECK_OK(sp_ckpt_open(&r, p3, SP_CKPT_AUTO, 0, NULL, 0, NULL));
    CHECK(r && sp_ckpt_count(r) == k, "aborted write leaves the previous file");
    sp_ckpt_close(r);
    (void)same_file;
    sp_ckpt_close(c);
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
}

/* safetensors: crafted headers. */
static void st_expect(const char *hdr, size_t datalen, const char *needle, const char *what) {
    size_t hl = strlen(hdr), n = 8 + hl + datalen;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    sp_ckpt *c = NULL;
    sp_status st = sp_ckpt_open_memory(&c, b, n, "bad.safetensors", SP_CKPT_AUTO, 0, NULL, 0, NULL);
    if (!needle) CHECK(st == SP_OK, "%s: %s", what, sp_last_error());
    else CHECK(st != SP_OK && strstr(sp_last_error(), "bad.safetensors") && strstr(sp_last_error(), needle),
               "%s: status %d, message '%s' should mention '%s'", what, st, sp_last_error(), needle);
    sp_ckpt_close(c);
    free(b);
}

SUITE(ckpt_safetensors_malformed) {
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, NULL, "valid");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "not a JSON object", "broken JSON");
    st_expect("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'F33'", "unknown dtype");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "tensor 'a': data_offsets span 8 bytes, expected 12", "span");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, "out of range", "past the end");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative", "negative dim");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
              "overflows", "overflowing product");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "out of range", "reversed offsets");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets", "missing offsets");
    st_expect("{\"__metadata__\":{\"crc_num\":\"x\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
              "crc_num", "bad crc_num");
}
