/* dtype.c — dtype names and sizes, exact float16/bfloat16 conversions,
 * element load/store. */
#include "internal.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* The one dtype table: every other name lookup (MindSpore .ckpt types, safetensors and
 * torch names in engine/io, the FFI's C types in bindings/ffi/tensor.lua) reads it. */
const sp_dtype_info sp_dtypes[SP_NUM_DTYPES] = {
    /*            name        size float MindSpore   st      torch             torch storage      C type     aliases */
    [SP_FLOAT32]  = {"float32",  4, 1, "Float32",  "F32",  "torch.float32",  "FloatStorage",    "float",    "float f32"},
    [SP_FLOAT16]  = {"float16",  2, 1, "Float16",  "F16",  "torch.float16",  "HalfStorage",     "uint16_t", "half f16"},
    [SP_BFLOAT16] = {"bfloat16", 2, 1, "BFloat16", "BF16", "torch.bfloat16", "BFloat16Storage", "uint16_t", "bf16"},
    [SP_FLOAT64]  = {"float64",  8, 1, "Float64",  "F64",  "torch.float64",  "DoubleStorage",   "double",   "float_ double f64"},
    [SP_INT8]     = {"int8",     1, 0, "Int8",     "I8",   "torch.int8",     "CharStorage",     "int8_t",   ""},
    [SP_INT16]    = {"int16",    2, 0, "Int16",    "I16",  "torch.int16",    "ShortStorage",    "int16_t",  ""},
    [SP_INT32]    = {"int32",    4, 0, "Int32",    "I32",  "torch.int32",    "IntStorage",      "int32_t",  "int"},
    [SP_INT64]    = {"int64",    8, 0, "Int64",    "I64",  "torch.int64",    "LongStorage",     "int64_t",  "long"},
    [SP_UINT8]    = {"uint8",    1, 0, "UInt8",    "U8",   "torch.uint8",    "ByteStorage",     "uint8_t",  ""},
    [SP_UINT16]   = {"uint16",   2, 0, "UInt16",   "U16",  NULL,             NULL,              "uint16_t", ""},
    [SP_UINT32]   = {"uint32",   4, 0, "UInt32",   "U32",  NULL,             NULL,              "uint32_t", ""},
    [SP_UINT64]   = {"uint64",   8, 0, "UInt64",   "U64",  NULL,             NULL,              "uint64_t", ""},
    [SP_BOOL]     = {"bool",     1, 0, "Bool",     "BOOL", "torch.bool",     "BoolStorage",     "uint8_t",  "bool_"},
};

int sp_dtype_valid(int d) { return d >= 0 && d < SP_NUM_DTYPES; }
size_t sp_dtype_size(int d) { return sp_dtype_valid(d) ? sp_dtypes[d].size : 0; }
const char *sp_dtype_name(int d) { return sp_dtype_valid(d) ? sp_dtypes[d].name : "?"; }
const char *sp_dtype_ctype(int d) { return sp_dtype_valid(d) ? sp_dtypes[d].ctype : NULL; }
int sp_dtype_is_float(int d) { return sp_dtype_valid(d) && sp_dtypes[d].is_float; }
int sp_dtype_is_int(int d) { return sp_dtype_valid(d) && !sp_dtypes[d].is_float; }

/* 1 when name is one of the space-separated words of list. */
static int in_words(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ' ') p++;
        size_t w = strcspn(p, " ");
        if (w && w == n && memcmp(p, name, n) == 0) return 1;
        p += w;
    }
    return 0;
}

int sp_dtype_from_name(const char *name) {
    if (!name || !*name) return -1;
    /* exact: numpy / torch aliases ("float", "half", "long"...) and safetensors names */
    for (int d = 0; d < SP_NUM_DTYPES; d++)
        if (in_words(sp_dtypes[d].aliases, name) || strcmp(name, sp_dtypes[d].st) == 0) return d;
    /* spore / numpy names, and MindSpore's CamelCase ("Float32", "UInt8", "Uint8",
     * "BFloat16", "Bool") compared case-insensitively. */
    for (int d = 0; d < SP_NUM_DTYPES; d++)
        if (strcasecmp(name, sp_dtypes[d].name) == 0) return d;
    return -1;
}

/* ---- float16 / bfloat16 ------------------------------------------------ */

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint64_t f64_bits(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }

/* Round a double to half precision directly (no double rounding through float). */
uint16_t sp_f64_to_f16(double x) {
    uint64_t u = f64_bits(x);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    int exp = (int)((u >> 52) & 0x7ff);
    uint64_t man = u & 0xfffffffffffffull;
    if (exp == 0x7ff) {
        if (man == 0) return sign | 0x7c00u;
        /* NaN: keep the top payload bits, force quiet */
        return sign | 0x7e00u | (uint16_t)((man >> 42) & 0x1ffu);
    }
    double a = fabs(x);
    if (a == 0.0) return sign;
    int e = exp - 1023;          /* unbiased exponent (normal doubles) */
    if (exp == 0) return sign;   /* double subnormals underflow to zero */
    if (e > 15) return sign | 0x7c00u;
    /* Number of significand bits kept: normal half has 10 fraction bits; below
     * 2^-14 the half is subnormal with fewer bits. */
    uint64_t full = man | (1ull << 52); /* 53-bit significand */
    int shift;                           /* bits dropped from `full` */
    uint32_t hexp;
    if (e >= -14) { shift = 52 - 10; hexp = (uint32_t)(e + 15); }
    else { shift = 52 - 10 + (-14 - e); hexp = 0; if (shift > 63) return sign; }
    uint64_t kept = full >> shift;
    uint64_t rem = full & ((1ull << shift) - 1);
    uint64_t half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (kept & 1))) kept++;
    uint32_t h;
    if (hexp == 0) {
        h = (uint32_t)kept; /* subnormal; may round up into the smallest normal: fine */
    } else {
        /* kept holds the implicit bit at position 10; overflow to 2^11 bumps exponent */
        if (kept >> 11) { kept >>= 1; hexp++; }
        if (hexp >= 31) return sign | 0x7c00u;
        h = (hexp << 10) | (uint32_t)(kept & 0x3ffu);
    }
    return sign | (uint16_t)h;
}

uint16_t sp_f32_to_f16(float x) { return sp_f64_to_f16((double)x); } /* float→double is exact */

float sp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t sp_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

uint16_t sp_f64_to_bf16(double x) {
    uint64_t u = f64_bits(x);
    uint16_t sign = (uint16_t)((u >> 48) & 0x8000u);
    int exp = (int)((u >> 52) & 0x7ff);
    uint64_t man = u & 0xfffffffffffffull;
    if (exp == 0x7ff) {
        if (man == 0) return sign | 0x7f80u;
        return sign | 0x7fc0u | (uint16_t)((man >> 45) & 0x3fu);
    }
    if (exp == 0) return sign;
    int e = exp - 1023;
    if (e > 127) return sign | 0x7f80u;
    uint64_t full = man | (1ull << 52);
    int shift;
    uint32_t bexp;
    if (e >= -126) { shift = 52 - 7; bexp = (uint32_t)(e + 127); }
    else { shift = 52 - 7 + (-126 - e); bexp = 0; if (shift > 63) return sign; }
    uint64_t kept = full >> shift;
    uint64_t rem = full & ((1ull << shift) - 1);
    uint64_t half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (kept & 1))) kept++;
    uint32_t b;
    if (bexp == 0) b = (uint32_t)kept;
    else {
        if (kept >> 8) { kept >>= 1; bexp++; }
        if (bexp >= 255) return sign | 0x7f80u;
        b = (bexp << 7) | (uint32_t)(kept & 0x7fu);
    }
    return sign | (uint16_t)b;
}

float sp_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

/* ---- element load / store ---------------------------------------------- */

double sp_load_f64(int d, const void *p) {
    switch (d) {
    case SP_FLOAT32: { float v; memcpy(&v, p, 4); return v; }
    case SP_FLOAT64: { double v; memcpy(&v, p, 8); return v; }
    case SP_FLOAT16: { uint16_t v; memcpy(&v, p, 2); return sp_f16_to_f32(v); }
    case SP_BFLOAT16: { uint16_t v; memcpy(&v, p, 2); return sp_bf16_to_f32(v); }
    case SP_INT8: return *(const int8_t *)p;
    case SP_UINT8: return *(const uint8_t *)p;
    case SP_BOOL: return *(const uint8_t *)p != 0;
    case SP_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case SP_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case SP_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case SP_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case SP_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case SP_UINT64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    }
    return 0;
}

/* Saturating float -> integer, truncating toward zero; NaN -> 0. */
static int64_t sat_i64(double v, double lo, double hi) {
    if (v != v) return 0;
    if (v <= lo) return (int64_t)lo;
    if (v >= hi) return (int64_t)hi;
    return (int64_t)v;
}

void sp_store_f64(int d, void *p, double v) {
    switch (d) {
    case SP_FLOAT32: { float f = (float)v; memcpy(p, &f, 4); return; }
    case SP_FLOAT64: memcpy(p, &v, 8); return;
    case SP_FLOAT16: { uint16_t h = sp_f64_to_f16(v); memcpy(p, &h, 2); return; }
    case SP_BFLOAT16: { uint16_t h = sp_f64_to_bf16(v); memcpy(p, &h, 2); return; }
    case SP_BOOL: *(uint8_t *)p = (v != 0); return;
    case SP_INT8: *(int8_t *)p = (int8_t)sat_i64(v, -128, 127); return;
    case SP_UINT8: *(uint8_t *)p = (uint8_t)sat_i64(v, 0, 255); return;
    case SP_INT16: { int16_t x = (int16_t)sat_i64(v, -32768, 32767); memcpy(p, &x, 2); return; }
    case SP_UINT16: { uint16_t x = (uint16_t)sat_i64(v, 0, 65535); memcpy(p, &x, 2); return; }
    case SP_INT32: { int32_t x = (int32_t)sat_i64(v, -2147483648.0, 2147483647.0); memcpy(p, &x, 4); return; }
    case SP_UINT32: { uint32_t x = (uint32_t)sat_i64(v, 0, 4294967295.0); memcpy(p, &x, 4); return; }
    case SP_INT64: {
        int64_t x = (v != v) ? 0 : v >= 9223372036854775807.0 ? INT64_MAX : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
        memcpy(p, &x, 8); return;
    }
    case SP_UINT64: {
        uint64_t x = (v != v || v <= 0) ? 0 : v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;
        memcpy(p, &x, 8); return;
    }
    }
}

int64_t sp_load_i64(int d, const void *p) {
    switch (d) {
    case SP_INT64: { int64_t v; memcpy(&v, p, 8); return v; }
    case SP_UINT64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    default: return (int64_t)sp_load_f64(d, p);
    }
}

void sp_store_i64(int d, void *p, int64_t v) {
    switch (d) {
    case SP_INT64: memcpy(p, &v, 8); return;
    case SP_UINT64: { uint64_t x = (uint64_t)v; memcpy(p, &x, 8); return; }
    case SP_INT8: *(int8_t *)p = (int8_t)v; return;   /* wraps, like numpy astype */
    case SP_UINT8: *(uint8_t *)p = (uint8_t)v; return;
    case SP_BOOL: *(uint8_t *)p = v != 0; return;
    case SP_INT16: { int16_t x = (int16_t)v; memcpy(p, &x, 2); return; }
    case SP_UINT16: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); return; }
    case SP_INT32: { int32_t x = (int32_t)v; memcpy(p, &x, 4); return; }
    case SP_UINT32: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); return; }
    default: sp_store_f64(d, p, (double)v);
    }
}
