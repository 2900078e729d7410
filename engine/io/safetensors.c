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

typedef struct { int64_t idx; int64_t begin; } order_t;
static int by_begin(const void *a, const void *b) {
    const order_t *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->idx < y->idx ? -1 : 1);
}
static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
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
    cJSON *root = cJSON_ParseWithLength(hdr, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sp_error(SP_EFORMAT, "file '%s': safetensors header is not a JSON object", c->path);
    }
    sp_status st = SP_OK;
    const char *crc_str = NULL;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string ? it->string : "";
        if (strcmp(name, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) { st = sp_error(SP_EFORMAT, "file '%s': __metadata__ is not an object", c->path); break; }
            free(c->meta); /* a duplicate __metadata__: the last wins */
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
    if (!st && c->n) {
        /* entries in data order (spore's writer keeps the saved order there) */
        order_t *o = malloc((size_t)c->n * sizeof *o);
        ck_entry *tmp = malloc((size_t)c->n * sizeof *tmp);
        if (!o || !tmp) st = sp_error(SP_ENOMEM, "out of memory");
        else {
            for (int64_t i = 0; i < c->n; i++) { o[i].idx = i; o[i].begin = (const uint8_t *)c->e[i].data - data; }
            qsort(o, (size_t)c->n, sizeof *o, by_begin);
            for (int64_t i = 0; i < c->n; i++) tmp[i] = c->e[o[i].idx];
            memcpy(c->e, tmp, (size_t)c->n * sizeof *tmp);
            for (int64_t i = 1; i < c->n; i++)
                if (strcmp(c->e[i].name, c->e[i - 1].name) == 0) { /* cJSON keeps duplicate keys */
                    st = sp_error(SP_EFORMAT, "file '%s': tensor '%s' appears twice in the header", c->path,
                                  c->e[i].name);
                    break;
                }
        }
        free(o); free(tmp);
    }
    if (!st && crc_str) {
        char *end = NULL;
        unsigned long long want = strtoull(crc_str, &end, 10);
        if (!*crc_str || *end || want > 0xffffffffull) {
            st = sp_error(SP_EFORMAT, "file '%s': __metadata__.crc_num '%s' is not a 32-bit decimal", c->path, crc_str);
        } else {
            c->crc = (uint32_t)want;
            c->crc_state = 1;
            if (flags & SP_CKPT_CRC) {
                /* MindSpore: per sorted key, crc over the name then bytes(ndarray); for a 0-d
                 * integer/bool array bytes(v) gives v zero bytes. */
                char **names = malloc((size_t)(c->n ? c->n : 1) * sizeof *names);
                int64_t *ix = malloc((size_t)(c->n ? c->n : 1) * sizeof *ix);
                if (!names || !ix) st = sp_error(SP_ENOMEM, "out of memory");
                uint32_t crc = 0;
                for (int64_t i = 0; !st && i < c->n; i++) names[i] = c->e[i].name;
                if (!st) qsort(names, (size_t)c->n, sizeof *names, by_name);
                for (int64_t i = 0; !st && i < c->n; i++) {
                    const ck_entry *e = NULL;
                    for (int64_t j = 0; j < c->n; j++) if (c->e[j].name == names[i]) { e = &c->e[j]; break; }
                    crc = sp_crc32(crc, e->name, strlen(e->name));
                    if (e->ndim == 0 && e->dtype != SP_FLOAT32 && e->dtype != SP_FLOAT16 && e->dtype != SP_FLOAT64 &&
                        e->dtype != SP_BFLOAT16) {
                        int64_t v = sp_load_i64(e->dtype, e->data);
                        crc = ck_crc32_zeros(crc, v > 0 ? (uint64_t)v : 0);
                    } else {
                        crc = sp_crc32(crc, e->data, e->nbytes);
                    }
                }
                free(names); free(ix);
                if (!st && crc != c->crc)
                    st = sp_error(SP_ECRC, "file '%s': CRC mismatch: crc_num says %u, the tensors give %u", c->path,
                                  c->crc, crc);
                if (!st) c->crc_state = 2;
            }
        }
    } else if (!st && (flags & SP_CKPT_CRC)) {
        st = sp_error(SP_ECRC, "file '%s': crc_check requested but the safetensors metadata has no crc_num", c->path);
    }
    cJSON_Delete(root);
    return st;
}
