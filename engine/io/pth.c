/* pth.c — PyTorch .pth reader (torch.save's zip format since 1.6): a bounds-checked zip
 * central-directory reader (STORED entries only) and a restricted unpickler for the
 * state_dict pickle. Only the globals a state_dict needs are recognised
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter,
 * torch.<X>Storage); any other global or opcode is an error naming it and its offset.
 * Nothing is ever executed: globals are tags, REDUCE only interprets those tags.
 *
 * Result: one entry per tensor, named by its dict key. Entries that view one torch
 * storage share one engine storage (the storage is copied out of the file once); a
 * contiguous view is a view of it, a non-contiguous one (transposed, strided, expanded)
 * a copy of just its own elements. Nesting: a top-level value that is itself a
 * dict is flattened one level with "key." as prefix ({"state_dict": {...}, "epoch": 3}
 * gives "state_dict.conv.weight" ... and "epoch"). Python ints / floats / bools become
 * 0-d int64 / float64 / bool entries; other values (strings, None, deeper dicts, lists)
 * become entries of type "pickle:<kind>" with no tensor (the Lua side skips and reports
 * them). Besides the state_dict opcodes, BINFLOAT and lists (EMPTY_LIST, APPEND(S)) are
 * read as inert data (a list keeps only its length), since training checkpoints carry
 * them ("lr", "milestones").
 *
 * Bounds: everything the reader allocates for a file of n bytes (unpickler values, stack,
 * memo, storages, copies of non-contiguous views, entries) is charged to one budget of
 * n + 64 MiB, so reading a file never takes more than about twice its size + 64 MiB;
 * past it the read is refused, naming the file. Parsing is O(n log n): zip names are
 * looked up by binary search, storages by hash, duplicate dict keys and entry names are
 * found by sorting.
 */
#include "io/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PK_MAX_DEPTH 100000   /* value stack */
#define PK_MAX_MEMO (1 << 22)
#define PTH_SLACK ((size_t)64 << 20)   /* budget: file size + this */
#define PK_CHUNK ((size_t)64 << 10)    /* arena chunk */

/* ---- zip ---------------------------------------------------------------- */

static uint32_t u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t u32(const uint8_t *p) { return u16(p) | u16(p + 2) << 16; }
static uint64_t u64(const uint8_t *p) { return (uint64_t)u32(p) | (uint64_t)u32(p + 4) << 32; }

typedef struct { const char *name; size_t name_len; const uint8_t *data; size_t size; } zentry;
typedef struct { zentry *e; size_t n; } zdir;

int ck_is_pth(const uint8_t *buf, size_t n) {
    return n >= 4 && buf[0] == 'P' && buf[1] == 'K' && buf[2] == 3 && buf[3] == 4;
}

static sp_status zip_read(const char *path, const uint8_t *buf, size_t n, zdir *z) {
    z->e = NULL; z->n = 0;
    if (n < 22) return sp_error(SP_EFORMAT, "file '%s': zip: %zu bytes, too short for an end record", path, n);
    size_t eo = (size_t)-1;
    size_t lo = n > 22 + 65535 ? n - 22 - 65535 : 0;
    for (size_t i = n - 22 + 1; i-- > lo;)
        if (u32(buf + i) == 0x06054b50u && i + 22 + u16(buf + i + 20) == n) { eo = i; break; }
    if (eo == (size_t)-1) return sp_error(SP_EFORMAT, "file '%s': zip: no end-of-central-directory record (truncated?)", path);
    uint64_t count = u16(buf + eo + 10), cd_size = u32(buf + eo + 12), cd_off = u32(buf + eo + 16);
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* zip64: locator 20 bytes before the end record */
        if (eo < 20 || u32(buf + eo - 20) != 0x07064b50u)
            return sp_error(SP_EFORMAT, "file '%s': zip: zip64 fields without a zip64 locator", path);
        uint64_t r = u64(buf + eo - 20 + 8);
        if (r > n || n - r < 56 || u32(buf + r) != 0x06064b50u)
            return sp_error(SP_EFORMAT, "file '%s': zip: bad zip64 end record offset", path);
        count = u64(buf + r + 32); cd_size = u64(buf + r + 40); cd_off = u64(buf + r + 48);
    }
    if (cd_off > n || cd_size > n - cd_off)
        return sp_error(SP_EFORMAT, "file '%s': zip: central directory (%llu bytes at %llu) outside the file", path,
                        (unsigned long long)cd_size, (unsigned long long)cd_off);
    if (count > cd_size / 46)
        return sp_error(SP_EFORMAT, "file '%s': zip: %llu entries cannot fit a %llu-byte central directory", path,
                        (unsigned long long)count, (unsigned long long)cd_size);
    z->e = calloc(count ? (size_t)count : 1, sizeof *z->e);
    if (!z->e) return sp_error(SP_ENOMEM, "out of memory");
    const uint8_t *p = buf + cd_off, *end = buf + cd_off + cd_size;
    for (uint64_t k = 0; k < count; k++) {
        if (end - p < 46 || u32(p) != 0x02014b50u)
            return sp_error(SP_EFORMAT, "file '%s': zip: central directory entry %llu is malformed", path,
                            (unsigned long long)k);
        uint32_t method = u16(p + 10), flags = u16(p + 8);
        uint64_t csize = u32(p + 20), usize = u32(p + 24), loff = u32(p + 42);
        size_t fl = u16(p + 28), xl = u16(p + 30), cl = u16(p + 32);
        if ((size_t)(end - p - 46) < fl + xl + cl)
            return sp_error(SP_EFORMAT, "file '%s': zip: central directory entry %llu overruns the directory", path,
                            (unsigned long long)k);
        const char *name = (const char *)p + 46;
        /* zip64 extra: the 0xffffffff fields, in order usize, csize, offset */
        const uint8_t *x = p + 46 + fl, *xe = x + xl;
        while (xe - x >= 4) {
            uint32_t id = u16(x), sz = u16(x + 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const uint8_t *q = x + 4, *qe = q + sz;
                if (usize == 0xffffffffu) { if (qe - q < 8) break; usize = u64(q); q += 8; }
                if (csize == 0xffffffffu) { if (qe - q < 8) break; csize = u64(q); q += 8; }
                if (loff == 0xffffffffu) { if (qe - q < 8) break; loff = u64(q); q += 8; }
            }
            x += 4 + sz;
        }
        if (method != 0)
            return sp_error(SP_EFORMAT, "file '%s': entry %.*s is compressed (method %u); spore reads torch.save's "
                            "stored zips", path, (int)fl, name, method);
        if (flags & 1)
            return sp_error(SP_EFORMAT, "file '%s': entry %.*s is encrypted", path, (int)fl, name);
        if (csize != usize)
            return sp_error(SP_EFORMAT, "file '%s': entry %.*s: stored entry with sizes %llu != %llu", path, (int)fl,
                            name, (unsigned long long)csize, (unsigned long long)usize);
        if (loff > n || n - loff < 30 || u32(buf + loff) != 0x04034b50u)
            return sp_error(SP_EFORMAT, "file '%s': entry %.*s: bad local header offset %llu", path, (int)fl, name,
                            (unsigned long long)loff);
        uint64_t doff = loff + 30 + u16(buf + loff + 26) + (uint64_t)u16(buf + loff + 28);
        if (doff > n || usize > n - doff)
            return sp_error(SP_EFORMAT, "file '%s': entry %.*s: %llu bytes at offset %llu run past the end of the "
                            "file (%zu bytes)", path, (int)fl, name, (unsigned long long)usize,
                            (unsigned long long)doff, n);
        z->e[z->n++] = (zentry){name, fl, buf + doff, (size_t)usize};
        p += 46 + fl + xl + cl;
    }
    return SP_OK;
}

/* Compare entry e's name with prefix||rest. */
static int zname_cmp(const zentry *e, const char *p, size_t pl, const char *r, size_t rl) {
    size_t n = e->name_len, m = pl + rl;
    int c = memcmp(e->name, p, n < pl ? n : pl);
    if (c) return c;
    if (n <= pl) return n < m ? -1 : 0;
    size_t k2 = n - pl < rl ? n - pl : rl;
    c = memcmp(e->name + pl, r, k2);
    if (c) return c;
    return n < m ? -1 : n > m ? 1 : 0;
}
static int by_zname(const void *a, const void *b) {
    const zentry *x = a, *y = b;
    int c = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
    return c ? c : x->name_len < y->name_len ? -1 : x->name_len > y->name_len ? 1 : 0;
}

/* z->e sorted by name (zip_sort): binary search. */
static const zentry *zip_find(const zdir *z, const char *prefix, size_t plen, const char *rest) {
    size_t rl = strlen(rest), lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = zname_cmp(&z->e[mid], prefix, plen, rest, rl);
        if (c == 0) return &z->e[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

static sp_status zip_sort(const char *path, zdir *z) {
    if (z->n > 1) qsort(z->e, z->n, sizeof *z->e, by_zname);
    for (size_t i = 1; i < z->n; i++)
        if (by_zname(&z->e[i - 1], &z->e[i]) == 0)
            return sp_error(SP_EFORMAT, "file '%s': zip: entry %.*s appears twice, expected unique names", path,
                            (int)z->e[i].name_len, z->e[i].name);
    return SP_OK;
}

/* ---- pickle values (arena-allocated, freed together) -------------------- */

enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR, V_MARK, V_LIST };
enum { G_ODICT = 1, G_REBUILD, G_PARAM, G_STORAGE };

struct pv;
typedef struct pvt {      /* a tensor's view of its storage */
    struct pv *storage;
    int64_t offset;
    int ndim;
    int64_t shape[SP_MAX_DIMS], strides[SP_MAX_DIMS];
} pvt;

typedef struct pv {
    int kind;
    int dtype;            /* GLOBAL storage / STORAGE / TENSOR; DICT: 1 once its keys are resolved */
    int esc;              /* referenced from a container, the memo or the intern table: never recycled */
    int64_t i;            /* INT/BOOL; GLOBAL: G_*; STORAGE: index in the storage table; LIST: length */
    double f;
    const char *s;        /* STR (bytes in the pickle, not NUL-terminated); STORAGE: key */
    size_t slen;
    struct pv **it;       /* TUPLE items; DICT keys and values interleaved */
    int64_t n, cap;
    union {
        pvt *t;           /* TENSOR */
        struct pv *storage_next; /* on the free list */
    };
} pv;

/* One torch storage (archive entry data/<key>): read out of the file once, shared by
 * every tensor that views it. */
typedef struct {
    const char *key; size_t klen;
    int dtype;
    int64_t numel;
    sp_tensor *t;         /* materialised on the first contiguous view */
} sto_t;

/* The unpickler's arena, stack, memo, storage table and the zip directory are transient:
 * freed before ck_parse_pth returns, so they are not reported to sp_mem_stats (they are
 * charged to the per-file budget). What outlives the call is counted: tensors live in
 * engine storage, and the file's bytes (read into an engine buffer, never mapped) are
 * counted by ck_map while open. */
typedef struct blk { struct blk *next; size_t size, used, pad; } blk;
typedef struct {
    const char *path;
    blk *arena;
    pv **stack; int64_t sn, scap;
    pv **memo; int64_t mcap;
    sto_t *sto; int64_t nsto, capsto;
    int64_t *htab; int64_t hcap;      /* storage key -> index + 1, open addressing */
    pv *none, *bools[2], *small[256]; /* interned immutable values */
    pv *free;                         /* recycled values (list items are dropped) */
    size_t used, limit;               /* budget (bytes) */
    int over;                         /* the budget was exceeded */
} pk;

static int charge(pk *k, size_t n) {
    if (n > k->limit - k->used) { k->over = 1; return 0; }
    k->used += n;
    return 1;
}
static sp_status over_error(const pk *k, const char *what) {
    return sp_error(SP_EFORMAT, "file '%s': reading it needs more than %zu MiB (the file's size + %zu MiB, the bound "
                    "for any file) at %s: the file amplifies into far more memory than it holds", k->path,
                    k->limit >> 20, PTH_SLACK >> 20, what);
}
static sp_status oom(const pk *k, const char *what) {
    return k->over ? over_error(k, what) : sp_error(SP_ENOMEM, "file '%s': out of memory at %s", k->path, what);
}

static void *pk_alloc(pk *k, size_t n) {
    n = (n + 15) & ~(size_t)15;
    blk *b = k->arena;
    if (b && b->size - b->used >= n) {
        void *r = (char *)(b + 1) + b->used;
        b->used += n;
        return r;
    }
    size_t sz = n > PK_CHUNK ? n : PK_CHUNK;
    if (!charge(k, sz + sizeof(blk))) return NULL;
    blk *nb = calloc(1, sizeof(blk) + sz);
    if (!nb) return NULL;
    nb->size = sz; nb->used = n;
    if (b && n > PK_CHUNK) { nb->next = b->next; b->next = nb; } /* keep filling the current chunk */
    else { nb->next = b; k->arena = nb; }
    return nb + 1;
}
static pv *pv_new(pk *k, int kind) {
    pv *v = k->free;
    if (v) { k->free = v->storage_next; memset(v, 0, sizeof *v); }
    else v = pk_alloc(k, sizeof(pv));
    if (v) v->kind = kind;
    return v;
}
/* A value only the stack held (a list item: lists keep their length only) is recycled. */
static void pv_drop(pk *k, pv *v) {
    if (v->esc) return;
    v->storage_next = k->free;
    k->free = v;
}
/* Immutable small values are shared (a list or tuple of them costs a pointer each). */
static pv *pv_int(pk *k, int64_t x) {
    if (x >= 0 && x < 256 && k->small[x]) return k->small[x];
    pv *v = pv_new(k, V_INT);
    if (!v) return NULL;
    v->i = x;
    if (x >= 0 && x < 256) { k->small[x] = v; v->esc = 1; }
    return v;
}
static pv *pv_bool(pk *k, int x) {
    if (!k->bools[x] && (k->bools[x] = pv_new(k, V_BOOL))) { k->bools[x]->i = x; k->bools[x]->esc = 1; }
    return k->bools[x];
}
static pv *pv_none(pk *k) {
    if (!k->none && (k->none = pv_new(k, V_NONE))) k->none->esc = 1;
    return k->none;
}
static int pv_append(pk *k, pv *c, pv *x) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? c->cap * 2 : 8;
        pv **a = pk_alloc(k, (size_t)cap * sizeof *a);
        if (!a) return 0;
        if (c->n) memcpy(a, c->it, (size_t)c->n * sizeof *a);
        c->it = a; c->cap = cap;
    }
    c->it[c->n++] = x;
    x->esc = 1;
    return 1;
}
/* A tuple of the cnt values at items (exact size). */
static pv *pv_tuple(pk *k, pv **items, int64_t cnt) {
    pv *t = pv_new(k, V_TUPLE);
    if (!t) return NULL;
    if (cnt) {
        if (!(t->it = pk_alloc(k, (size_t)cnt * sizeof *t->it))) return NULL;
        memcpy(t->it, items, (size_t)cnt * sizeof *t->it);
        for (int64_t j = 0; j < cnt; j++) items[j]->esc = 1;
    }
    t->n = t->cap = cnt;
    return t;
}

static const char *kind_name(int kind) {
    static const char *N[] = {"None", "bool", "int", "float", "str", "tuple", "dict", "global", "storage", "tensor",
                              "mark", "list"};
    return kind >= 0 && kind <= V_LIST ? N[kind] : "?";
}

/* torch storage classes and dtype names: read from the dtype table (engine/core/dtype.c). */
static const char *torch_type_name(int dtype) {
    return sp_dtype_valid(dtype) && sp_dtypes[dtype].torch ? sp_dtypes[dtype].torch : "?";
}

/* ---- storages by key ---------------------------------------------------- */

static uint64_t hash_key(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* The storage table index for (key, dtype, numel): one per key. -1: out of budget;
 * -2: the key was seen with another dtype or element count (error set). */
static int64_t storage_index(pk *k, const char *key, size_t klen, int dtype, int64_t numel, size_t off) {
    if (2 * (k->nsto + 1) > k->hcap) {
        int64_t cap = k->hcap ? k->hcap * 2 : 64;
        if (!charge(k, (size_t)cap * sizeof(int64_t))) return -1;
        int64_t *h = calloc((size_t)cap, sizeof *h);
        if (!h) return -1;
        for (int64_t i = 0; i < k->nsto; i++) {
            uint64_t q = hash_key(k->sto[i].key, k->sto[i].klen) & (uint64_t)(cap - 1);
            while (h[q]) q = (q + 1) & (uint64_t)(cap - 1);
            h[q] = i + 1;
        }
        free(k->htab);
        k->htab = h; k->hcap = cap;
    }
    uint64_t q = hash_key(key, klen) & (uint64_t)(k->hcap - 1);
    for (; k->htab[q]; q = (q + 1) & (uint64_t)(k->hcap - 1)) {
        sto_t *s = &k->sto[k->htab[q] - 1];
        if (s->klen != klen || memcmp(s->key, key, klen)) continue;
        if (s->dtype != dtype || s->numel != numel) {
            sp_error(SP_EFORMAT, "file '%s': pickle: storage '%.*s' at offset %zu is %lld elements of %s, but was "
                     "%lld elements of %s before: expected one dtype and size per storage", k->path,
                     (int)(klen > 200 ? 200 : klen), key, off, (long long)numel, torch_type_name(dtype),
                     (long long)s->numel, torch_type_name(s->dtype));
            return -2;
        }
        return k->htab[q] - 1;
    }
    if (k->nsto == k->capsto) {
        int64_t cap = k->capsto ? k->capsto * 2 : 64;
        if (!charge(k, (size_t)(cap - k->capsto) * sizeof(sto_t))) return -1;
        sto_t *a = realloc(k->sto, (size_t)cap * sizeof *a);
        if (!a) return -1;
        k->sto = a; k->capsto = cap;
    }
    k->sto[k->nsto] = (sto_t){key, klen, dtype, numel, NULL};
    k->htab[q] = ++k->nsto;
    return k->nsto - 1;
}

/* ---- the unpickler ------------------------------------------------------ */

#define PERR(...) do { st = sp_error(SP_EFORMAT, __VA_ARGS__); goto done; } while (0)

static int push(pk *k, pv *v) {
    if (!v) return 0;
    if (k->sn == k->scap) {
        if (k->scap >= PK_MAX_DEPTH) return 0;
        int64_t cap = k->scap ? k->scap * 2 : 64;
        if (!charge(k, (size_t)(cap - k->scap) * sizeof(pv *))) return 0;
        pv **s = realloc(k->stack, (size_t)cap * sizeof *s);
        if (!s) return 0;
        k->stack = s; k->scap = cap;
    }
    k->stack[k->sn++] = v;
    return 1;
}

static int64_t find_mark(pk *k) {
    for (int64_t i = k->sn - 1; i >= 0; i--) if (k->stack[i]->kind == V_MARK) return i;
    return -1;
}

static int as_dims(const pv *t, int64_t *out, int *nd) {
    if (t->kind != V_TUPLE || t->n > SP_MAX_DIMS) return 0;
    for (int64_t i = 0; i < t->n; i++) {
        if (t->it[i]->kind != V_INT || t->it[i]->i < 0) return 0;
        out[i] = t->it[i]->i;
    }
    *nd = (int)t->n;
    return 1;
}

/* REDUCE of a recognised global over an args tuple. */
static sp_status reduce(pk *k, pv *fn, pv *args, size_t off, pv **out) {
    *out = NULL;
    if (fn->kind != V_GLOBAL || args->kind != V_TUPLE)
        return sp_error(SP_EFORMAT, "file '%s': pickle: REDUCE at offset %zu applies a %s to a %s; only the "
                        "allowed globals can be called", k->path, off, kind_name(fn->kind), kind_name(args->kind));
    if (fn->i == G_ODICT) {
        if (args->n != 0 && !(args->n == 1 && args->it[0]->kind == V_DICT))
            return sp_error(SP_EFORMAT, "file '%s': pickle: OrderedDict at offset %zu with unexpected arguments",
                            k->path, off);
        pv *d = pv_new(k, V_DICT);
        if (d && args->n == 1) {   /* a copy: the argument dict stays what it was */
            pv *a = args->it[0];
            for (int64_t j = 0; j < a->n; j++) if (!pv_append(k, d, a->it[j])) { d = NULL; break; }
        }
        *out = d;
        return d ? SP_OK : oom(k, "an OrderedDict");
    }
    if (fn->i == G_PARAM) {
        if (args->n < 1 || args->it[0]->kind != V_TENSOR)
            return sp_error(SP_EFORMAT, "file '%s': pickle: _rebuild_parameter at offset %zu without a tensor", k->path,
                            off);
        *out = args->it[0];
        return SP_OK;
    }
    if (fn->i == G_REBUILD) {
        /* (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
        if (args->n < 4 || args->it[0]->kind != V_STORAGE || args->it[1]->kind != V_INT || args->it[1]->i < 0)
            return sp_error(SP_EFORMAT, "file '%s': pickle: _rebuild_tensor_v2 at offset %zu: expected (storage, "
                            "offset, size, stride, ...)", k->path, off);
        pv *t = pv_new(k, V_TENSOR);
        pvt *tv = t ? pk_alloc(k, sizeof *tv) : NULL;
        if (!tv) return oom(k, "a tensor");
        t->t = tv;
        int nd1 = 0, nd2 = 0;
        if (!as_dims(args->it[2], tv->shape, &nd1) || !as_dims(args->it[3], tv->strides, &nd2) || nd1 != nd2)
            return sp_error(SP_EFORMAT, "file '%s': pickle: _rebuild_tensor_v2 at offset %zu: size and stride must "
                            "be tuples of at most %d non-negative ints of the same length", k->path, off, SP_MAX_DIMS);
        tv->ndim = nd1;
        tv->storage = args->it[0];
        t->dtype = tv->storage->dtype;
        tv->offset = args->it[1]->i;
        *out = t;
        return SP_OK;
    }
    return sp_error(SP_EFORMAT, "file '%s': pickle: REDUCE at offset %zu calls a storage class", k->path, off);
}

static sp_status unpickle(pk *k, const uint8_t *b, size_t n, pv **result) {
    sp_status st = SP_OK;
    size_t i = 0;
    *result = NULL;
#define NEED(m) do { if (n - i < (size_t)(m)) PERR("file '%s': pickle: truncated at offset %zu (opcode 0x%02x needs %zu bytes)", k->path, op_off, op, (size_t)(m)); } while (0)
#define POP(v) do { if (k->sn <= 0 || k->stack[k->sn - 1]->kind == V_MARK) PERR("file '%s': pickle: stack underflow at offset %zu (opcode 0x%02x)", k->path, op_off, op); (v) = k->stack[--k->sn]; } while (0)
#define OOM() do { char what_[48]; snprintf(what_, sizeof what_, "pickle offset %zu", op_off); st = oom(k, what_); goto done; } while (0)
#define PUSH(v) do { if (!push(k, (v))) { if (k->sn >= PK_MAX_DEPTH) PERR("file '%s': pickle: stack deeper than %d values at offset %zu", k->path, PK_MAX_DEPTH, op_off); OOM(); } } while (0)
    while (i < n) {
        size_t op_off = i;
        uint8_t op = b[i++];
        switch (op) {
        case 0x80: NEED(1); if (b[i] > 5) PERR("file '%s': pickle: protocol %u at offset %zu is not supported", k->path, b[i], op_off); i += 1; break; /* PROTO */
        case 0x95: NEED(8); i += 8; break;                         /* FRAME: a hint */
        case '}': PUSH(pv_new(k, V_DICT)); break;                  /* EMPTY_DICT */
        case ')': PUSH(pv_tuple(k, NULL, 0)); break;               /* EMPTY_TUPLE */
        case '(': PUSH(pv_new(k, V_MARK)); break;                  /* MARK */
        case ']': PUSH(pv_new(k, V_LIST)); break;                  /* EMPTY_LIST: inert data, its length only */
        case 'a': {                                                /* APPEND */
            pv *v; POP(v);
            if (k->sn <= 0 || k->stack[k->sn - 1]->kind != V_LIST)
                PERR("file '%s': pickle: APPEND at offset %zu on something other than a list", k->path, op_off);
            k->stack[k->sn - 1]->i++;
            pv_drop(k, v);
            break;
        }
        case 'e': {                                                /* APPENDS */
            int64_t m = find_mark(k);
            if (m < 1 || k->stack[m - 1]->kind != V_LIST)
                PERR("file '%s': pickle: APPENDS at offset %zu without MARK or list", k->path, op_off);
            k->stack[m - 1]->i += k->sn - m - 1;
            for (int64_t j = m; j < k->sn; j++) pv_drop(k, k->stack[j]);
            k->sn = m;
            break;
        }
        case 'N': PUSH(pv_none(k)); break;                         /* NONE */
        case 0x88: case 0x89: PUSH(pv_bool(k, op == 0x88)); break; /* NEWTRUE / NEWFALSE */
        case 'X': case 0x8c: {                                     /* BINUNICODE / SHORT_BINUNICODE */
            size_t len;
            if (op == 'X') { NEED(4); len = u32(b + i); i += 4; } else { NEED(1); len = b[i]; i += 1; }
            NEED(len);
            pv *v = pv_new(k, V_STR);
            if (!v) OOM();
            v->s = (const char *)b + i; v->slen = len; i += len;
            PUSH(v); break;
        }
        case 'J': case 'K': case 'M': {                            /* BININT / BININT1 / BININT2 */
            int64_t x;
            if (op == 'J') { NEED(4); x = (int32_t)u32(b + i); i += 4; }
            else if (op == 'K') { NEED(1); x = b[i]; i += 1; }
            else { NEED(2); x = u16(b + i); i += 2; }
            PUSH(pv_int(k, x)); break;
        }
        case 0x8a: {                                               /* LONG1 */
            NEED(1);
            size_t len = b[i++];
            NEED(len);
            if (len > 8) PERR("file '%s': pickle: LONG1 of %zu bytes at offset %zu exceeds int64", k->path, len, op_off);
            uint64_t u = 0;
            for (size_t j = 0; j < len; j++) u |= (uint64_t)b[i + j] << (8 * j);
            if (len > 0 && len < 8 && (b[i + len - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * len); /* sign-extend */
            i += len;
            PUSH(pv_int(k, (int64_t)u)); break;
        }
        case 'G': {                                                /* BINFLOAT: big-endian double */
            NEED(8);
            uint64_t u = 0;
            for (int j = 0; j < 8; j++) u = (u << 8) | b[i + j];
            i += 8;
            pv *v = pv_new(k, V_FLOAT);
            if (!v) OOM();
            memcpy(&v->f, &u, 8);
            PUSH(v); break;
        }
        case 'q': case 'r': {                                      /* BINPUT / LONG_BINPUT */
            uint64_t idx;
            if (op == 'q') { NEED(1); idx = b[i]; i += 1; } else { NEED(4); idx = u32(b + i); i += 4; }
            if (k->sn <= 0) PERR("file '%s': pickle: BINPUT on an empty stack at offset %zu", k->path, op_off);
            if (idx >= PK_MAX_MEMO) PERR("file '%s': pickle: memo index %llu at offset %zu is too large", k->path, (unsigned long long)idx, op_off);
            if (idx >= (uint64_t)k->mcap) {
                int64_t cap = k->mcap ? k->mcap : 64;
                while ((uint64_t)cap <= idx) cap *= 2;
                if (!charge(k, (size_t)(cap - k->mcap) * sizeof(pv *))) OOM();
                pv **m = realloc(k->memo, (size_t)cap * sizeof *m);
                if (!m) OOM();
                memset(m + k->mcap, 0, (size_t)(cap - k->mcap) * sizeof *m);
                k->memo = m; k->mcap = cap;
            }
            k->memo[idx] = k->stack[k->sn - 1];
            k->memo[idx]->esc = 1;
            break;
        }
        case 'h': case 'j': {                                      /* BINGET / LONG_BINGET */
            uint64_t idx;
            if (op == 'h') { NEED(1); idx = b[i]; i += 1; } else { NEED(4); idx = u32(b + i); i += 4; }
            if (idx >= (uint64_t)k->mcap || !k->memo[idx])
                PERR("file '%s': pickle: memo index %llu at offset %zu was never stored", k->path, (unsigned long long)idx, op_off);
            PUSH(k->memo[idx]); break;
        }
        case 'c': {                                                /* GLOBAL "module\nname\n" */
            const uint8_t *m0 = b + i, *nl1 = memchr(m0, '\n', n - i);
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(b + n - nl1 - 1)) : NULL;
            if (!nl2) PERR("file '%s': pickle: truncated GLOBAL at offset %zu", k->path, op_off);
            size_t ml = (size_t)(nl1 - m0), nl = (size_t)(nl2 - nl1 - 1);
            const char *mod = (const char *)m0, *nm = (const char *)nl1 + 1;
            i = (size_t)(nl2 - b) + 1;
            pv *v = pv_new(k, V_GLOBAL);
            if (!v) OOM();
#define IS(s1, l1, lit) ((l1) == sizeof(lit) - 1 && memcmp((s1), (lit), (l1)) == 0)
            if (IS(mod, ml, "collections") && IS(nm, nl, "OrderedDict")) v->i = G_ODICT;
            else if (IS(mod, ml, "torch._utils") && IS(nm, nl, "_rebuild_tensor_v2")) v->i = G_REBUILD;
            else if (IS(mod, ml, "torch._utils") && IS(nm, nl, "_rebuild_parameter")) v->i = G_PARAM;
            else if (IS(mod, ml, "torch")) {
                for (int d = 0; d < SP_NUM_DTYPES; d++) {
                    const char *sn = sp_dtypes[d].torch_storage;
                    if (sn && nl == strlen(sn) && memcmp(nm, sn, nl) == 0) { v->i = G_STORAGE; v->dtype = d; }
                }
            }
#undef IS
            if (!v->i) {
                int pm = ml > 64 ? 64 : (int)ml, pn = nl > 64 ? 64 : (int)nl;
                PERR("file '%s': pickle: forbidden global '%.*s.%.*s' at offset %zu (a state_dict pickle only "
                     "needs collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter and "
                     "torch.<X>Storage; nothing was executed)", k->path, pm, mod, pn, nm, op_off);
            }
            PUSH(v); break;
        }
        case 'Q': {                                                /* BINPERSID */
            pv *pid; POP(pid);
            if (pid->kind != V_TUPLE || pid->n != 5 || pid->it[0]->kind != V_STR || pid->it[0]->slen != 7 || memcmp(pid->it[0]->s, "storage", 7) ||
                pid->it[1]->kind != V_GLOBAL || pid->it[1]->i != G_STORAGE || pid->it[2]->kind != V_STR ||
                pid->it[4]->kind != V_INT || pid->it[4]->i < 0)
                PERR("file '%s': pickle: persistent id at offset %zu is not ('storage', torch.<X>Storage, key, "
                     "location, numel)", k->path, op_off);
            pv *s = pv_new(k, V_STORAGE);
            if (!s) OOM();
            s->dtype = pid->it[1]->dtype; s->s = pid->it[2]->s; s->slen = pid->it[2]->slen;
            s->i = storage_index(k, s->s, s->slen, s->dtype, pid->it[4]->i, op_off);
            if (s->i == -2) { st = SP_EFORMAT; goto done; }
            if (s->i < 0) OOM();
            PUSH(s); break;
        }
        case 't': {                                                /* TUPLE */
            int64_t m = find_mark(k);
            if (m < 0) PERR("file '%s': pickle: TUPLE without MARK at offset %zu", k->path, op_off);
            pv *t = pv_tuple(k, k->stack + m + 1, k->sn - m - 1);
            if (!t) OOM();
            k->sn = m;
            PUSH(t); break;
        }
        case 0x85: case 0x86: case 0x87: {                         /* TUPLE1/2/3 */
            int cnt = op - 0x84;
            pv *x[3];
            for (int j = cnt - 1; j >= 0; j--) POP(x[j]);
            pv *t = pv_tuple(k, x, cnt);
            if (!t) OOM();
            PUSH(t); break;
        }
        case 'R': {                                                /* REDUCE */
            pv *args, *fn, *r; POP(args); POP(fn);
            if ((st = reduce(k, fn, args, op_off, &r))) goto done;
            PUSH(r); break;
        }
        case 's': case 'u': {                                      /* SETITEM / SETITEMS */
            int64_t from;
            if (op == 's') {
                from = k->sn - 2;
                if (from < 1 || k->stack[from]->kind == V_MARK || k->stack[from + 1]->kind == V_MARK)
                    PERR("file '%s': pickle: SETITEM at offset %zu needs dict, key, value", k->path, op_off);
            } else {
                int64_t m = find_mark(k);
                if (m < 1 || (k->sn - m - 1) % 2) PERR("file '%s': pickle: SETITEMS at offset %zu without MARK or with an odd item count", k->path, op_off);
                from = m + 1;
            }
            pv *d = k->stack[op == 's' ? from - 1 : from - 2];
            if (d->kind != V_DICT) PERR("file '%s': pickle: SETITEM(S) at offset %zu on a %s", k->path, op_off, kind_name(d->kind));
            /* appended; a key set again is resolved when the dict is read (dict_resolve) */
            for (int64_t j = from; j + 1 < k->sn; j += 2)
                if (!pv_append(k, d, k->stack[j]) || !pv_append(k, d, k->stack[j + 1])) OOM();
            k->sn = op == 's' ? from : from - 1;
            break;
        }
        case 'b': {                                                /* BUILD: state ignored for dicts/tensors */
            pv *state; POP(state);
            pv_drop(k, state);
            if (k->sn <= 0 || (k->stack[k->sn - 1]->kind != V_DICT && k->stack[k->sn - 1]->kind != V_TENSOR))
                PERR("file '%s': pickle: BUILD at offset %zu on something other than a dict or tensor", k->path, op_off);
            break;
        }
        case '.':                                                  /* STOP */
            if (k->sn != 1) PERR("file '%s': pickle: STOP at offset %zu with %lld values on the stack", k->path, op_off, (long long)k->sn);
            *result = k->stack[0];
            return SP_OK;
        default:
            PERR("file '%s': pickle: unsupported opcode 0x%02x ('%c') at offset %zu (spore reads state_dict pickles "
                 "only)", k->path, op, op >= 32 && op < 127 ? op : '?', op_off);
        }
    }
    st = sp_error(SP_EFORMAT, "file '%s': pickle: no STOP opcode (truncated data.pkl?)", k->path);
done:
    return st;
#undef NEED
#undef POP
#undef PUSH
#undef OOM
}

/* Python dict semantics for a key set twice: the value is replaced, the key keeps its
 * first position. SETITEM(S) only appended; resolved here by sorting, O(n log n). */
typedef struct { const pv *key; int64_t pos; } kslot;
static int by_key(const void *a, const void *b) {
    const kslot *x = a, *y = b;
    size_t l = x->key->slen < y->key->slen ? x->key->slen : y->key->slen;
    int c = memcmp(x->key->s, y->key->s, l);
    if (!c) c = x->key->slen < y->key->slen ? -1 : x->key->slen > y->key->slen ? 1 : 0;
    return c ? c : x->pos < y->pos ? -1 : x->pos > y->pos ? 1 : 0;
}
static sp_status dict_resolve(pk *k, pv *d) {
    if (d->dtype) return SP_OK;
    d->dtype = 1;
    int64_t np = d->n / 2, ns = 0;
    if (np < 2) return SP_OK;
    kslot *ks = malloc((size_t)np * sizeof *ks);
    if (!ks) return sp_error(SP_ENOMEM, "file '%s': out of memory", k->path);
    for (int64_t q = 0; q < np; q++)
        if (d->it[2 * q]->kind == V_STR) ks[ns++] = (kslot){d->it[2 * q], q};
    qsort(ks, (size_t)ns, sizeof *ks, by_key);
    int dropped = 0;
    for (int64_t a = 0; a < ns;) {
        int64_t b2 = a + 1;
        while (b2 < ns && ks[b2].key->slen == ks[a].key->slen && !memcmp(ks[b2].key->s, ks[a].key->s, ks[a].key->slen))
            b2++;
        if (b2 - a > 1) {
            d->it[2 * ks[a].pos + 1] = d->it[2 * ks[b2 - 1].pos + 1];
            for (int64_t r = a + 1; r < b2; r++) d->it[2 * ks[r].pos] = NULL;
            dropped = 1;
        }
        a = b2;
    }
    free(ks);
    if (dropped) {
        int64_t w = 0;
        for (int64_t q = 0; q < np; q++)
            if (d->it[2 * q]) { d->it[w++] = d->it[2 * q]; d->it[w++] = d->it[2 * q + 1]; }
        d->n = w;
    }
    return SP_OK;
}

/* ---- entries ------------------------------------------------------------ */

/* what an entry costs beyond its contents (entry, names, tensor handle), charged to the budget */
#define ENTRY_COST 256
typedef struct { sp_ckpt *c; pk *k; const zdir *z; const char *pre; size_t plen; } ctx;

static int view_is_contiguous(const pvt *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->strides[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

static sp_status add_tensor(ctx *x, const char *name, const pv *tp) {
    sp_ckpt *c = x->c;
    const pvt *t = tp->t;
    sto_t *s = &x->k->sto[t->storage->i];
    size_t esz = sp_dtype_size(tp->dtype);
    char key[300];
    if (s->klen > 200 || memchr(s->key, 0, s->klen))
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': storage key too long or with a NUL byte", c->path, name);
    snprintf(key, sizeof key, "/data/%.*s", (int)s->klen, s->key);
    const zentry *ze = zip_find(x->z, x->pre, x->plen, key);
    if (!ze) return sp_error(SP_EFORMAT, "file '%s': tensor '%s': storage '%.*s' (archive entry %.*s%s) is missing",
                             c->path, name, (int)s->klen, s->key, (int)x->plen, x->pre, key);
    int64_t sbytes;
    if (!sp_mul_ok(s->numel, (int64_t)esz, &sbytes) || (uint64_t)sbytes > ze->size)
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': storage '%.*s' claims %lld elements of %zu bytes but its "
                        "entry holds %zu bytes", c->path, name, (int)s->klen, s->key, (long long)s->numel, esz, ze->size);
    /* the highest element index the view touches must lie inside the storage */
    int64_t numel = 1, last = t->offset;
    for (int d = 0; d < t->ndim; d++)
        if (!sp_mul_ok(numel, t->shape[d], &numel))
            return sp_error(SP_EFORMAT, "file '%s': tensor '%s': the element count overflows", c->path, name);
    if (numel > 0) {
        for (int d = 0; d < t->ndim; d++) {
            int64_t span;
            if (!sp_mul_ok(t->shape[d] - 1, t->strides[d], &span) || __builtin_add_overflow(last, span, &last))
                return sp_error(SP_EFORMAT, "file '%s': tensor '%s': the view's extent overflows", c->path, name);
        }
        if (last >= s->numel)
            return sp_error(SP_EFORMAT, "file '%s': tensor '%s': view (offset %lld, last element %lld) exceeds its "
                            "storage of %lld elements", c->path, name, (long long)t->offset, (long long)last,
                            (long long)s->numel);
    }
    int64_t nbytes;
    if (!sp_mul_ok(numel, (int64_t)esz, &nbytes))
        return sp_error(SP_EFORMAT, "file '%s': tensor '%s': the byte size overflows", c->path, name);
    int contiguous = numel == 0 || view_is_contiguous(t);
    char what[64];
    snprintf(what, sizeof what, "tensor '%.40s'", name);
    if (!charge(x->k, ENTRY_COST + strlen(name))) return over_error(x->k, what);
    if (numel > 0 && contiguous && !s->t) {   /* the storage, read out of the file once */
        if (!charge(x->k, (size_t)sbytes)) return over_error(x->k, what);
        sp_status st = sp_tensor_empty(&s->t, s->dtype, 1, &s->numel);
        if (st) return st;
        memcpy(sp_host_data(s->t), ze->data, (size_t)sbytes);
    } else if (numel > 0 && !contiguous && !charge(x->k, (size_t)nbytes)) {
        return over_error(x->k, what);
    }
    ck_entry *e = ck_push(c);
    if (!e || !(e->name = strdup(name)) || !(e->type = strdup(torch_type_name(tp->dtype))))
        return sp_error(SP_ENOMEM, "out of memory");
    e->dtype = tp->dtype;
    e->ndim = t->ndim;
    memcpy(e->shape, t->shape, sizeof e->shape);
    e->nbytes = (size_t)nbytes;
    sp_status st;
    if (numel == 0) {
        st = sp_tensor_new(&e->t, tp->dtype, t->ndim, t->shape);
    } else if (contiguous) {
        int64_t strides[SP_MAX_DIMS], acc = 1;
        for (int d = t->ndim - 1; d >= 0; d--) { strides[d] = acc; acc *= t->shape[d]; }
        st = sp_tensor_view(&e->t, s->t, t->ndim, t->shape, strides, t->offset);
    } else {
        /* its own elements only: row-major walk of the view over the file's bytes */
        st = sp_tensor_empty(&e->t, tp->dtype, t->ndim, t->shape);
        if (!st) {
            uint8_t *dst = sp_host_data(e->t);
            const uint8_t *src = ze->data;
            int64_t idx[SP_MAX_DIMS] = {0};
            int64_t pos = t->offset;
            for (int64_t q = 0; q < numel; q++) {
                memcpy(dst + (size_t)q * esz, src + (size_t)pos * esz, esz);
                for (int d = t->ndim - 1; d >= 0; d--) {
                    if (++idx[d] < t->shape[d]) { pos += t->strides[d]; break; }
                    pos -= (t->shape[d] - 1) * t->strides[d];
                    idx[d] = 0;
                }
            }
        }
    }
    if (st) return sp_error(st, "file '%s': tensor '%s': %s", c->path, name, sp_last_error());
    e->data = sp_host_data(e->t);
    return SP_OK;
}

static sp_status add_scalar(ctx *x, const char *name, const pv *v) {
    sp_ckpt *c = x->c;
    char what[64];
    snprintf(what, sizeof what, "entry '%.40s'", name);
    if (!charge(x->k, ENTRY_COST + strlen(name))) return over_error(x->k, what);
    int dtype = v->kind == V_FLOAT ? SP_FLOAT64 : v->kind == V_BOOL ? SP_BOOL : SP_INT64;
    ck_entry *e = ck_push(c);
    if (!e || !(e->name = strdup(name)) ||
        !(e->type = strdup(v->kind == V_FLOAT ? "float" : v->kind == V_BOOL ? "bool" : "int")))
        return sp_error(SP_ENOMEM, "out of memory");
    e->dtype = dtype;
    e->ndim = 0;
    sp_status st = sp_tensor_new(&e->t, dtype, 0, e->shape);
    if (st) return st;
    e->data = sp_host_data(e->t);
    e->nbytes = sp_dtype_size(dtype);
    if (v->kind == V_FLOAT) memcpy(e->data, &v->f, 8);
    else if (v->kind == V_BOOL) *(uint8_t *)e->data = (uint8_t)v->i;
    else memcpy(e->data, &v->i, 8);
    return SP_OK;
}

static sp_status add_value(ctx *x, const char *name, pv *v, int depth) {
    switch (v->kind) {
    case V_TENSOR: return add_tensor(x, name, v);
    case V_INT: case V_FLOAT: case V_BOOL: return add_scalar(x, name, v);
    default: break;
    }
    if (v->kind == V_DICT && depth == 0) {
        sp_status st = dict_resolve(x->k, v);
        if (st) return st;
        for (int64_t q = 0; q + 1 < v->n; q += 2) {
            const pv *key = v->it[q];
            if (key->kind != V_STR)
                return sp_error(SP_EFORMAT, "file '%s': dict '%s' has a %s key; expected str", x->c->path, name,
                                kind_name(key->kind));
            if (memchr(key->s, 0, key->slen))
                return sp_error(SP_EFORMAT, "file '%s': dict '%s' has a key with a NUL byte; expected a name without "
                                "NUL", x->c->path, name);
            size_t nl = strlen(name), kl = key->slen;
            char *full = malloc(nl + kl + 2);
            if (!full) return sp_error(SP_ENOMEM, "out of memory");
            memcpy(full, name, nl); full[nl] = '.'; memcpy(full + nl + 1, key->s, kl); full[nl + 1 + kl] = 0;
            st = add_value(x, full, v->it[q + 1], depth + 1);
            free(full);
            if (st) return st;
        }
        return SP_OK;
    }
    /* no tensor: recorded so that the caller can report it as skipped */
    char what[64];
    snprintf(what, sizeof what, "entry '%.40s'", name);
    if (!charge(x->k, ENTRY_COST + strlen(name))) return over_error(x->k, what);
    ck_entry *e = ck_push(x->c);
    char type[32];
    snprintf(type, sizeof type, "pickle:%s", kind_name(v->kind));
    if (!e || !(e->name = strdup(name)) || !(e->type = strdup(type))) return sp_error(SP_ENOMEM, "out of memory");
    return SP_OK;
}


sp_status ck_parse_pth(sp_ckpt *c, const uint8_t *buf, size_t n) {
    zdir z;
    pk k = {.path = c->path, .limit = n + PTH_SLACK};
    sp_status st = zip_read(c->path, buf, n, &z);
    if (st) goto out;
    if ((st = zip_sort(c->path, &z))) goto out;
    /* <archive>/data.pkl: the archive prefix is the saved file's stem ("archive" in newer torch) */
    const zentry *pkl = NULL;
    size_t plen = 0;
    for (size_t q = 0; q < z.n && !pkl; q++) {
        const char *slash = memchr(z.e[q].name, '/', z.e[q].name_len);
        if (slash && z.e[q].name_len - (size_t)(slash - z.e[q].name) == 9 && memcmp(slash, "/data.pkl", 9) == 0) {
            pkl = &z.e[q];
            plen = (size_t)(slash - z.e[q].name);
        }
    }
    if (!pkl) { st = sp_error(SP_EFORMAT, "file '%s': zip without <archive>/data.pkl: not a torch.save file (legacy "
                              "non-zip .pth files, torch < 1.6, are not supported)", c->path); goto out; }
    const zentry *bo = zip_find(&z, pkl->name, plen, "/byteorder");
    if (bo && !(bo->size == 6 && memcmp(bo->data, "little", 6) == 0)) {
        st = sp_error(SP_EFORMAT, "file '%s': byteorder is not 'little'; big-endian .pth files are not supported",
                      c->path);
        goto out;
    }
    pv *root;
    if ((st = unpickle(&k, pkl->data, pkl->size, &root))) goto out;
    ctx x = {c, &k, &z, pkl->name, plen};
    if (root->kind == V_TENSOR) {
        st = add_tensor(&x, "tensor", root);
    } else if (root->kind == V_DICT) {
        st = dict_resolve(&k, root);
        for (int64_t q = 0; q + 1 < root->n && !st; q += 2) {
            if (root->it[q]->kind != V_STR) {
                st = sp_error(SP_EFORMAT, "file '%s': top-level dict has a %s key; expected str", c->path,
                              kind_name(root->it[q]->kind));
                break;
            }
            const pv *key = root->it[q];
            char *nm = memchr(key->s, 0, key->slen) ? NULL : malloc(key->slen + 1);
            if (!nm) {
                st = memchr(key->s, 0, key->slen)
                         ? sp_error(SP_EFORMAT, "file '%s': top-level dict has a key with a NUL byte ('%s...'); "
                                    "expected a name without NUL", c->path, key->s)
                         : sp_error(SP_ENOMEM, "out of memory");
                break;
            }
            memcpy(nm, key->s, key->slen); nm[key->slen] = 0;
            st = add_value(&x, nm, root->it[q + 1], 0);
            free(nm);
        }
    } else {
        st = sp_error(SP_EFORMAT, "file '%s': the pickle holds a %s; expected a dict of tensors (a state_dict)",
                      c->path, kind_name(root->kind));
    }
    if (!st) st = ck_check_unique(c, ", after flattening nested dicts");
out:
    for (int64_t q = 0; q < k.nsto; q++) sp_tensor_free(k.sto[q].t); /* the entries' views keep what they use */
    free(k.sto);
    free(k.htab);
    free(z.e);
    free(k.stack);
    free(k.memo);
    while (k.arena) { blk *nx = k.arena->next; free(k.arena); k.arena = nx; }
    return st;
}
