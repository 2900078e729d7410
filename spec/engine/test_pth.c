/* test_pth.c — the PyTorch .pth reader: torch-written fixtures (views, dtypes), and
 * hostile inputs built here (forbidden globals, compressed entries, storages too
 * small, truncation at every offset, flipped bytes): always a clear error, never a crash. */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp_pth(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* A minimal zip writer: entries (name, data, len, method) stored as given. */
typedef struct { const char *name; const void *data; size_t len; int method; } zin;
static void put16(unsigned char **p, unsigned v) { *(*p)++ = v & 255; *(*p)++ = (v >> 8) & 255; }
static void put32(unsigned char **p, uint32_t v) { put16(p, v & 0xffff); put16(p, v >> 16); }
static unsigned char *zip_make(const zin *e, int n, size_t *outn) {
    size_t cap = 1024;
    for (int i = 0; i < n; i++) cap += 2 * (46 + strlen(e[i].name)) + e[i].len;
    unsigned char *buf = calloc(1, cap), *p = buf;
    uint32_t offs[16];
    for (int i = 0; i < n; i++) {
        offs[i] = (uint32_t)(p - buf);
        size_t fl = strlen(e[i].name);
        put32(&p, 0x04034b50); put16(&p, 20); put16(&p, 0); put16(&p, (unsigned)e[i].method); put16(&p, 0); put16(&p, 0);
        put32(&p, 0); put32(&p, (uint32_t)e[i].len); put32(&p, (uint32_t)e[i].len); put16(&p, (unsigned)fl); put16(&p, 0);
        memcpy(p, e[i].name, fl); p += fl;
        memcpy(p, e[i].data, e[i].len); p += e[i].len;
    }
    unsigned char *cd = p;
    for (int i = 0; i < n; i++) {
        size_t fl = strlen(e[i].name);
        put32(&p, 0x02014b50); put16(&p, 20); put16(&p, 20); put16(&p, 0); put16(&p, (unsigned)e[i].method);
        put16(&p, 0); put16(&p, 0); put32(&p, 0); put32(&p, (uint32_t)e[i].len); put32(&p, (uint32_t)e[i].len);
        put16(&p, (unsigned)fl); put16(&p, 0); put16(&p, 0); put16(&p, 0); put16(&p, 0); put32(&p, 0);
        put32(&p, offs[i]);
        memcpy(p, e[i].name, fl); p += fl;
    }
    uint32_t cds = (uint32_t)(p - cd);
    put32(&p, 0x06054b50); put16(&p, 0); put16(&p, 0); put16(&p, (unsigned)n); put16(&p, (unsigned)n);
    put32(&p, cds); put32(&p, (uint32_t)(cd - buf)); put16(&p, 0);
    *outn = (size_t)(p - buf);
    return buf;
}

static sp_status open_zip(const zin *e, int n, sp_ckpt **c) {
    size_t len;
    unsigned char *z = zip_make(e, n, &len);
    sp_status st = sp_ckpt_open_memory(c, z, len, "t.pth", SP_CKPT_AUTO, 0, NULL, 0, NULL);
    free(z);
    return st;
}

/* pickle: {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', numel), off, (d0,), (s0,), False, OrderedDict())} */
static size_t pickle_tensor(unsigned char *b, int numel, int off, int d0, int s0) {
    unsigned char *p = b;
    const char *h = "\x80\x02}q\x00X\x01\x00\x00\x00w"
                    "ctorch._utils\n_rebuild_tensor_v2\n("
                    "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00" "cpu";
    size_t hl = 2 + 1 + 2 + 6 + 34 + 1 + 1 + 12 + 19 + 6 + 8;
    memcpy(p, h, hl); p += hl;
    *p++ = 'J'; put32(&p, (uint32_t)numel);
    *p++ = 't'; *p++ = 'Q';
    *p++ = 'J'; put32(&p, (uint32_t)off);
    *p++ = 'J'; put32(&p, (uint32_t)d0); *p++ = 0x85;
    *p++ = 'J'; put32(&p, (uint32_t)s0); *p++ = 0x85;
    *p++ = 0x89;
    memcpy(p, "ccollections\nOrderedDict\n)R", 27); p += 27;
    *p++ = 't'; *p++ = 'R'; *p++ = 's'; *p++ = '.';
    return (size_t)(p - b);
}

SUITE(pth_fixtures) {
    sp_ckpt *c = NULL;
    CHECK_OK(sp_ckpt_open(&c, "spec/fixtures/pth/views.pth", SP_CKPT_AUTO, 0, NULL, 0, NULL));
    if (!c) return;
    CHECK(sp_ckpt_format(c) == SP_CKPT_PTH, "format %d", sp_ckpt_format(c));
    CHECK(sp_ckpt_count(c) == 6, "count %lld", (long long)sp_ckpt_count(c));
    /* m = arange(24).reshape(4, 6) */
    struct { const char *name; int nd; int64_t s0, s1; float want[24]; int n; } cases[] = {
        {"cols", 2, 4, 2, {1, 2, 7, 8, 13, 14, 19, 20}, 8},
        {"t", 2, 6, 4, {0, 6, 12, 18, 1, 7, 13, 19, 2, 8, 14, 20, 3, 9, 15, 21, 4, 10, 16, 22, 5, 11, 17, 23}, 24},
        {"row", 1, 6, 0, {12, 13, 14, 15, 16, 17}, 6},
        {"step", 2, 3, 3, {6, 8, 10, 12, 14, 16, 18, 20, 22}, 9},
        {"expand", 2, 3, 4, {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, 12},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int64_t idx = -1;
        for (int64_t i = 0; i < sp_ckpt_count(c); i++) if (!strcmp(sp_ckpt_name(c, i), cases[k].name)) idx = i;
        CHECK(idx >= 0, "entry %s missing", cases[k].name);
        if (idx < 0) continue;
        int64_t sh[SP_MAX_DIMS];
        int nd = sp_ckpt_shape(c, idx, sh);
        CHECK(nd == cases[k].nd && sh[0] == cases[k].s0 && (nd < 2 || sh[1] == cases[k].s1), "%s: shape", cases[k].name);
        CHECK(sp_ckpt_dtype(c, idx) == SP_FLOAT32 && !strcmp(sp_ckpt_type(c, idx), "torch.float32"), "%s dtype", cases[k].name);
        sp_tensor *t = NULL;
        CHECK_OK(sp_ckpt_tensor(c, idx, &t));
        if (t) {
            CHECK(sp_tensor_nbytes(t) == (size_t)cases[k].n * 4, "%s nbytes", cases[k].name);
            CHECK(memcmp(sp_tensor_data(t), cases[k].want, (size_t)cases[k].n * 4) == 0, "%s values", cases[k].name);
        }
        sp_tensor_free(t);
    }
    sp_ckpt_close(c);

    c = NULL;
    CHECK_OK(sp_ckpt_open(&c, "spec/fixtures/pth/wrapper.pth", SP_CKPT_PTH, 0, NULL, 0, NULL));
    if (c) {
        int found = 0;
        for (int64_t i = 0; i < sp_ckpt_count(c); i++) {
            const char *nm = sp_ckpt_name(c, i);
            if (!strcmp(nm, "epoch")) {
                found++;
                CHECK(sp_ckpt_dtype(c, i) == SP_INT64 && *(const int64_t *)sp_ckpt_bytes(c, i) == 3, "epoch");
            } else if (!strcmp(nm, "lr")) {
                found++;
                CHECK(sp_ckpt_dtype(c, i) == SP_FLOAT64 && *(const double *)sp_ckpt_bytes(c, i) == 0.125, "lr");
            } else if (!strcmp(nm, "name")) {
                found++;
                CHECK(sp_ckpt_dtype(c, i) == -1 && !strcmp(sp_ckpt_type(c, i), "pickle:str"), "name type");
            } else if (!strcmp(nm, "state_dict.bn.running_var")) found++;
        }
        CHECK(found == 4, "wrapper entries found %d", found);
    }
    sp_ckpt_close(c);

    /* a .ckpt refused as pth, a pth refused as safetensors */
    c = NULL;
    CHECK(sp_ckpt_open(&c, "spec/fixtures/ms_small.ckpt", SP_CKPT_PTH, 0, NULL, 0, NULL) == SP_EFORMAT &&
          strstr(sp_last_error(), "not a PyTorch .pth"), "ckpt as pth: %s", sp_last_error());
}

SUITE(pth_hostile) {
    sp_ckpt *c = NULL;
    unsigned char pkl[512];
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    /* a well-formed hand-built one first */
    size_t pl = pickle_tensor(pkl, 8, 2, 3, 2);
    zin ok[] = {{"a/data.pkl", pkl, pl, 0}, {"a/data/0", data, sizeof data, 0}, {"a/version", "3\n", 2, 0}};
    CHECK_OK(open_zip(ok, 3, &c));
    if (c) {
        CHECK(sp_ckpt_count(c) == 1, "count");
        const float *v = sp_ckpt_bytes(c, 0);
        CHECK(v && v[0] == 3 && v[1] == 5 && v[2] == 7, "strided offset values");
    }
    sp_ckpt_close(c); c = NULL;

    /* view past the storage: offset 2 + (4-1)*2 = 8 >= 8 */
    pl = pickle_tensor(pkl, 8, 2, 4, 2);
    CHECK(open_zip(ok, 3, &c) == SP_EFORMAT && strstr(sp_last_error(), "tensor 'w'") &&
          strstr(sp_last_error(), "exceeds its storage"), "view past storage: %s", sp_last_error());
    /* storage claims more elements than its entry holds */
    pl = pickle_tensor(pkl, 9, 0, 2, 1);
    CHECK(open_zip(ok, 3, &c) == SP_EFORMAT && strstr(sp_last_error(), "entry holds 32 bytes"), "short storage: %s",
          sp_last_error());
    /* overflowing extent */
    pl = pickle_tensor(pkl, 8, 0x7fffffff, 2, 0x7fffffff);
    CHECK(open_zip(ok, 3, &c) == SP_EFORMAT, "huge offset: %s", sp_last_error());
    /* missing storage entry */
    pl = pickle_tensor(pkl, 8, 0, 2, 1);
    ok[1].name = "a/data/1";
    CHECK(open_zip(ok, 3, &c) == SP_EFORMAT && strstr(sp_last_error(), "is missing"), "missing: %s", sp_last_error());
    ok[1].name = "a/data/0";
    /* compressed entry */
    ok[1].method = 8;
    CHECK(open_zip(ok, 3, &c) == SP_EFORMAT &&
          strstr(sp_last_error(), "entry a/data/0 is compressed (method 8); spore reads torch.save's stored zips"),
          "compressed: %s", sp_last_error());
    ok[1].method = 0;
    (void)pl;

    /* forbidden globals: named, never executed */
    const char *evil[] = {
        "\x80\x02" "cos\nsystem\nX\x05\x00\x00\x00touch\x85R.",
        "\x80\x02" "cbuiltins\neval\n.",
        "\x80\x02" "ctorch.storage\n_load_from_bytes\n.",
        "\x80\x02" "ctorch\nTensor\n.",
    };
    const char *names[] = {"os.system", "builtins.eval", "torch.storage._load_from_bytes", "torch.Tensor"};
    for (int k = 0; k < 4; k++) {
        zin z[] = {{"a/data.pkl", evil[k], strlen(evil[k]) + (k == 0 ? 0 : 0), 0}};
        CHECK(open_zip(z, 1, &c) == SP_EFORMAT && strstr(sp_last_error(), "forbidden global") &&
              strstr(sp_last_error(), names[k]) && strstr(sp_last_error(), "offset 2"), "evil %d: %s", k, sp_last_error());
    }
    /* unsupported opcodes name the opcode and offset */
    const char *ops[] = {"\x80\x02S'a'\n.", "\x80\x02}(X\x01\x00\x00\x00" "aI1\nu.", "\x80\x02}."};
    zin z1[] = {{"a/data.pkl", ops[0], 8, 0}};
    CHECK(open_zip(z1, 1, &c) == SP_EFORMAT && strstr(sp_last_error(), "opcode 0x53 ('S') at offset 2"), "op: %s",
          sp_last_error());
    z1[0].data = ops[1]; z1[0].len = 15;
    CHECK(open_zip(z1, 1, &c) == SP_EFORMAT && strstr(sp_last_error(), "opcode 0x49 ('I') at offset 10"), "op: %s",
          sp_last_error());
    z1[0].data = ops[2]; z1[0].len = 4;
    CHECK_OK(open_zip(z1, 1, &c));   /* an empty dict is a valid (empty) state_dict */
    CHECK(c && sp_ckpt_count(c) == 0, "empty");
    sp_ckpt_close(c); c = NULL;
    zin z2[] = {{"a/other", "x", 1, 0}};
    CHECK(open_zip(z2, 1, &c) == SP_EFORMAT && strstr(sp_last_error(), "data.pkl"), "no pkl: %s", sp_last_error());

    /* a real fixture truncated at every offset, and with each byte flipped */
    size_t n = 0;
    unsigned char *b = slurp_pth("spec/fixtures/pth/views.pth", &n);
    CHECK(b != NULL, "views.pth missing");
    if (!b) return;
    int bad = 0;
    for (size_t cut = 0; cut < n; cut++) {
        sp_status st = sp_ckpt_open_memory(&c, b, cut, "cut.pth", SP_CKPT_PTH, 0, NULL, 0, NULL);
        if (st == SP_OK || !sp_last_error()[0]) bad++;
        sp_ckpt_close(c); c = NULL;
    }
    CHECK(bad == 0, "%d truncations accepted or without message", bad);
    int okc = 0, errc = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char *m = malloc(n);
        memcpy(m, b, n);
        m[i] ^= 0xff;
        if (sp_ckpt_open_memory(&c, m, n, "flip.pth", SP_CKPT_AUTO, 0, NULL, 0, NULL) == SP_OK) {
            okc++;
            for (int64_t j = 0; j < sp_ckpt_count(c); j++) {
                sp_tensor *t = NULL;
                if (sp_ckpt_tensor(c, j, &t) == SP_OK) sp_tensor_free(t);
            }
        } else {
            errc++;
        }
        sp_ckpt_close(c); c = NULL;
        free(m);
    }
    CHECK(okc + errc == (int)n && errc > 0, "flips: %d ok, %d errors", okc, errc);
    free(b);
}
