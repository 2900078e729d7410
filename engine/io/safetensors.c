/* safetensors.c — safetensors reader over the file's bytes read into one refcounted
 * engine buffer (tensors are zero-copy views of that buffer, made on demand) and MindSpore's crc_num check. Header parsed with cJSON. */
#include "io/ckpt_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ST_MAX_HEADER ((uint64_t)100 << 20)

static uint64_t rd_u64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

int ck_is_safetensors(const uint8_t *buf, size_t n) {
    if (n < 10) return 0;
    uint64_t h = rd_u64(buf);
    return h >= 2 && h <= n - 8 && buf[8] == '{';
}

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_u64(const cJSON *x, int64_t *out) {
    if (!cJSON_IsNumber(x)) return 0;
    double d = x->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || floor(d) != d) return 0;
    *out = (int64_t)d;
    return 1;
}

typedef struct { int64_t idx; int64_t begin, end; } order_t;
static int by_begin(const void *a, const void *b) {
    const order_t *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx ? 1 : 0;
}
static int by_entry_name(const void *a, const void *b) {
    return strcmp((*(const ck_entry *const *)a)->name, (*(const ck_entry *const *)b)->name);
}

/* The header bytes, as the reference (safetensors' Rust parser: from_utf8 + serde_json)
 * accepts them: no control bytes (a NUL is never padding), and after the JSON object only
 * JSON whitespace (writers pad the header with spaces to align the data section). */
static sp_status check_header_bytes(const sp_ckpt *c, const char *hdr, size_t hlen, const char *end) {
    for (size_t i = 0; i < hlen; i++) {
        unsigned char ch = (unsigned char)hdr[i];
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r')
            return sp_error(SP_EFORMAT, "file '%s': safetensors header byte %zu is 0x%02x: expected JSON text "
                            "(padding must be spaces, not NUL or control bytes)", c->path, i, ch);
    }
    for (const char *q = end; q < hdr + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r')
            return sp_error(SP_EFORMAT, "file '%s': safetensors header has %zu bytes after its JSON object that are "
                            "not space padding (at header byte %zu)", c->path, (size_t)(hdr + hlen - q),
                            (size_t)(q - hdr));
    return SP_OK;
}

/* As the reference validates: sorted by begin offset, the tensors' [begin, end) ranges
 * are contiguous from 0 (no gap, no overlap) and end exactly at the end of the data
 * section (no trailing bytes); no key appears twice. Entries are left in data order
 * (spore's writer keeps the saved order there). */
static sp_status check_layout(sp_ckpt *c, const uint8_t *data, size_t dlen) {
    sp_status st = SP_OK;
    if (c->n == 0) {
        if (dlen != 0)
            return sp_error(SP_EFORMAT, "file '%s': %zu trailing bytes after the header, expected none (no tensors)",
                            c->path, dlen);
        return SP_OK;
    }
    order_t *o = malloc((size_t)c->n * sizeof *o);
    ck_entry *tmp = malloc((size_t)c->n * sizeof *tmp);
    const ck_entry **byname = malloc((size_t)c->n * sizeof *byname);
    if (!o || !tmp || !byname) { st = sp_error(SP_ENOMEM, "out of memory"); goto out; }
    for (int64_t i = 0; i < c->n; i++) {
        o[i].idx = i;
        o[i].begin = (const uint8_t *)c->e[i].data - data;
        o[i].end = o[i].begin + (int64_t)c->e[i].nbytes;
    }
    qsort(o, (size_t)c->n, sizeof *o, by_begin);
    for (int64_t i = 0; i < c->n; i++) tmp[i] = c->e[o[i].idx];
    memcpy(c->e, tmp, (size_t)c->n * sizeof *tmp);
    int64_t pos = 0;
    for (int64_t i = 0; i < c->n; i++) {
        const ck_entry *e = &c->e[i];
        int64_t b0 = o[i].begin, b1 = o[i].end;
        if (b0 > pos) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': data_offsets [%lld, %lld) leave a gap of %lld bytes: "
                          "expected it to begin at %lld%s%s%s", c->path, e->name, (long long)b0, (long long)b1,
                          (long long)(b0 - pos), (long long)pos, i ? " (where tensor '" : "",
                          i ? c->e[i - 1].name : "", i ? "' ends)" : "");
            goto out;
        }
        if (b0 < pos) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': data_offsets [%lld, %lld) overlap tensor '%s' (which "
                          "ends at %lld): expected it to begin at %lld", c->path, e->name, (long long)b0,
                          (long long)b1, c->e[i - 1].name, (long long)pos, (long long)pos);
            goto out;
        }
        pos = b1;
    }
    if ((uint64_t)pos != dlen) {
        st = sp_error(SP_EFORMAT, "file '%s': %llu trailing bytes after tensor '%s': the data section is %zu bytes, "
                      "the tensors cover %lld", c->path, (unsigned long long)(dlen - (uint64_t)pos),
                      c->e[c->n - 1].name, dlen, (long long)pos);
        goto out;
    }
    for (int64_t i = 0; i < c->n; i++) byname[i] = &c->e[i];
    qsort(byname, (size_t)c->n, sizeof *byname, by_entry_name);
    for (int64_t i = 1; i < c->n; i++)
        if (strcmp(byname[i]->name, byname[i - 1]->name) == 0) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s' appears twice in the header, expected unique keys",
                          c->path, byname[i]->name);
            goto out;
        }
out:
    free(o); free(tmp); free(byname);
    return st;
}

/* MindSpore's crc_num: per sorted key, crc over the name then bytes(ndarray); for a 0-d
 * integer/bool array bytes(v) gives v zero bytes. Names are unique (check_layout). */
static sp_status check_crc(sp_ckpt *c) {
    const ck_entry **byname = malloc((size_t)(c->n ? c->n : 1) * sizeof *byname);
    if (!byname) return sp_error(SP_ENOMEM, "out of memory");
    for (int64_t i = 0; i < c->n; i++) byname[i] = &c->e[i];
    qsort(byname, (size_t)c->n, sizeof *byname, by_entry_name);
    uint32_t crc = 0;
    for (int64_t i = 0; i < c->n; i++) {
        const ck_entry *e = byname[i];
        crc = sp_crc32(crc, e->name, strlen(e->name));
        if (e->ndim == 0 && e->dtype != SP_FLOAT32 && e->dtype != SP_FLOAT16 && e->dtype != SP_FLOAT64 &&
            e->dtype != SP_BFLOAT16) {
            int64_t v = sp_load_i64(e->dtype, e->data);
            crc = ck_crc32_zeros(crc, v > 0 ? (uint64_t)v : 0);
        } else {
            crc = sp_crc32(crc, e->data, e->nbytes);
        }
    }
    free(byname);
    if (crc != c->crc)
        return sp_error(SP_ECRC, "file '%s': CRC mismatch: crc_num says %u, the tensors give %u", c->path, c->crc, crc);
    c->crc_state = 2;
    return SP_OK;
}

sp_status ck_parse_safetensors(sp_ckpt *c, int flags) {
    const uint8_t *buf = c->map->addr;
    size_t n = c->map->len;
    uint64_t hlen = rd_u64(buf);
    if (hlen > ST_MAX_HEADER)
        return sp_error(SP_EFORMAT, "file '%s': safetensors header of %llu bytes is too large", c->path,
                        (unsigned long long)hlen);
    const char *hdr = (const char *)buf + 8;
    const uint8_t *data = buf + 8 + hlen;
    size_t dlen = n - 8 - (size_t)hlen;
    const char *jend = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &jend, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        sp_status hst = check_header_bytes(c, hdr, (size_t)hlen, hdr + hlen);
        if (hst) return hst;
        return sp_error(SP_EFORMAT, "file '%s': safetensors header is not a JSON object", c->path);
    }
    sp_status st = check_header_bytes(c, hdr, (size_t)hlen, jend ? jend : hdr + hlen);
    if (st) { cJSON_Delete(root); return st; }
    const char *crc_str = NULL;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) { st = sp_error(SP_EFORMAT, "file '%s': __metadata__ is not an object", c->path); break; }
            if (c->meta) { st = sp_error(SP_EFORMAT, "file '%s': __metadata__ appears twice in the header, expected "
                                         "unique keys", c->path); break; }
            c->meta = cJSON_PrintUnformatted(it);
            cJSON *crc = cJSON_GetObjectItemCaseSensitive(it, "crc_num");
            if (cJSON_IsString(crc)) crc_str = crc->valuestring;
            continue;
        }
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) ||
            cJSON_GetArraySize(of) != 2) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': header entry needs dtype, shape and data_offsets[2]",
                          c->path, name);
            break;
        }
        ck_entry *e = ck_push(c);
        if (!e || !(e->name = strdup(name)) || !(e->type = strdup(dt->valuestring))) {
            st = sp_error(SP_ENOMEM, "out of memory");
            break;
        }
        e->dtype = ck_st_dtype(dt->valuestring);
        if (e->dtype < 0) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': unknown dtype '%s' (expected F32, F16, BF16, F64, "
                          "I8..I64, U8..U64, BOOL)", c->path, name, dt->valuestring);
            break;
        }
        int nd = cJSON_GetArraySize(sh);
        if (nd > SP_MAX_DIMS) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': %d dims, at most %d supported", c->path, name, nd,
                          SP_MAX_DIMS);
            break;
        }
        int64_t numel = 1, bytes, b0, b1;
        e->ndim = nd;
        for (int d = 0; d < nd && !st; d++) {
            if (!json_u64(cJSON_GetArrayItem(sh, d), &e->shape[d]))
                st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': shape[%d] is not a non-negative integer",
                              c->path, name, d);
            else if (!sp_mul_ok(numel, e->shape[d], &numel))
                st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': the element count overflows", c->path, name);
        }
        if (st) break;
        if (!sp_mul_ok(numel, (int64_t)sp_dtype_size(e->dtype), &bytes)) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': the byte size overflows", c->path, name);
            break;
        }
        if (!json_u64(cJSON_GetArrayItem(of, 0), &b0) || !json_u64(cJSON_GetArrayItem(of, 1), &b1) || b0 > b1 ||
            (uint64_t)b1 > dlen) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': data_offsets out of range (data section is %zu "
                          "bytes)", c->path, name, dlen);
            break;
        }
        if (b1 - b0 != bytes) {
            st = sp_error(SP_EFORMAT, "file '%s': tensor '%s': data_offsets span %lld bytes, expected %lld "
                          "(%lld elements × %zu-byte %s)", c->path, name, (long long)(b1 - b0), (long long)bytes,
                          (long long)numel, sp_dtype_size(e->dtype), e->type);
            break;
        }
        e->data = (void *)(data + b0);
        e->nbytes = (size_t)bytes;
        e->aligned = ((uintptr_t)e->data % sp_dtype_size(e->dtype)) == 0;
    }
    if (!st) st = check_layout(c, data, dlen);
    if (!st && crc_str) {
        char *end = NULL;
        unsigned long long want = strtoull(crc_str, &end, 10);
        if (!*crc_str || *end || want > 0xffffffffull) {
            st = sp_error(SP_EFORMAT, "file '%s': __metadata__.crc_num '%s' is not a 32-bit decimal", c->path, crc_str);
        } else {
            c->crc = (uint32_t)want;
            c->crc_state = 1;
            if (flags & SP_CKPT_CRC) st = check_crc(c);
        }
    } else if (!st && (flags & SP_CKPT_CRC)) {
        st = sp_error(SP_ECRC, "file '%s': crc_check requested but the safetensors metadata has no crc_num", c->path);
    }
    cJSON_Delete(root);
    return st;
}
