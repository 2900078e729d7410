/* crypt.c — MindSpore's checkpoint encryption (mindspore/core/utils/crypto.cc) with
 * OpenSSL libcrypto. Blocks: int32 magic [16-byte GCM tag] int32 L int32 iv_len(16)
 * 16-byte IV int32 C, C bytes of ciphertext; little-endian; plaintext chunks of 64 MiB.
 * GCM uses the first 12 IV bytes as the nonce (OpenSSL's default IV length, which
 * MindSpore never changes), no AAD; CBC modes use PKCS#7 padding and the full IV. */
#include "io/ckpt_internal.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

int ck_enc_mode(const char *mode) {
    if (!mode || !*mode || strcmp(mode, "AES-GCM") == 0) return (int)CK_MAGIC_GCM;
    if (strcmp(mode, "AES-CBC") == 0) return (int)CK_MAGIC_CBC;
    if (strcmp(mode, "SM4-CBC") == 0) return (int)CK_MAGIC_SM4;
    return 0;
}

int ck_is_encrypted(const uint8_t *buf, size_t n, uint32_t *magic) {
    if (n < 4) return 0;
    uint32_t m = rd32(buf);
    if (m != CK_MAGIC_GCM && m != CK_MAGIC_CBC && m != CK_MAGIC_SM4) return 0;
    *magic = m;
    return 1;
}

static const EVP_CIPHER *cipher_for(uint32_t magic, size_t keylen) {
    if (magic == CK_MAGIC_SM4) return keylen == 16 ? EVP_sm4_cbc() : NULL;
    if (magic == CK_MAGIC_GCM)
        return keylen == 16 ? EVP_aes_128_gcm() : keylen == 24 ? EVP_aes_192_gcm() : keylen == 32 ? EVP_aes_256_gcm() : NULL;
    return keylen == 16 ? EVP_aes_128_cbc() : keylen == 24 ? EVP_aes_192_cbc() : keylen == 32 ? EVP_aes_256_cbc() : NULL;
}
static const char *mode_name(uint32_t m) {
    return m == CK_MAGIC_GCM ? "AES-GCM" : m == CK_MAGIC_CBC ? "AES-CBC" : "SM4-CBC";
}

sp_status ck_decrypt(const char *file, const uint8_t *in, size_t n, const void *key, size_t keylen, const char *mode,
                     uint8_t **out, size_t *outn) {
    *out = NULL; *outn = 0;
    uint32_t want = (uint32_t)ck_enc_mode(mode);
    if (!want) return sp_error(SP_EINVAL, "file '%s': unknown dec_mode '%s' (expected AES-GCM, AES-CBC, SM4-CBC)", file, mode);
    uint32_t first = rd32(in);
    if (first != want)
        return sp_error(SP_ECRYPTO, "file '%s': encrypted with %s but dec_mode is %s", file, mode_name(first), mode_name(want));
    const EVP_CIPHER *cph = cipher_for(want, keylen);
    if (!cph)
        return sp_error(SP_EINVAL, "file '%s': a %s key must be %s bytes, got %zu", file, mode_name(want),
                        want == CK_MAGIC_SM4 ? "16" : "16, 24 or 32", keylen);
    uint8_t *plain = malloc(n + 32);
    if (!plain) return sp_error(SP_ENOMEM, "file '%s': out of memory decrypting", file);
    size_t pos = 0, pn = 0;
    sp_status st = SP_OK;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) { free(plain); return sp_error(SP_ENOMEM, "out of memory"); }
    int gcm = want == CK_MAGIC_GCM;
    size_t hdr = 4 + (gcm ? 16 : 0) + 4 + 4 + 16 + 4;
    while (pos < n && !st) {
        if (n - pos < hdr) { st = sp_error(SP_EFORMAT, "file '%s': encrypted block at byte %zu truncated", file, pos); break; }
        const uint8_t *b = in + pos;
        if (rd32(b) != want) { st = sp_error(SP_EFORMAT, "file '%s': bad encryption block magic at byte %zu", file, pos); break; }
        const uint8_t *tag = gcm ? b + 4 : NULL;
        const uint8_t *q = b + 4 + (gcm ? 16 : 0);
        uint32_t L = rd32(q), ivl = rd32(q + 4);
        const uint8_t *iv = q + 8;
        uint32_t C = rd32(q + 24);
        if (ivl != 16 || (uint64_t)L != 4 + 16 + 4 + (uint64_t)C || C > n - pos - hdr || C == 0) {
            st = sp_error(SP_EFORMAT, "file '%s': encrypted block at byte %zu has inconsistent lengths "
                          "(L=%u iv_len=%u C=%u, %zu bytes remain)", file, pos, L, ivl, C, n - pos - hdr);
            break;
        }
        const uint8_t *ct = q + 28;
        int ol = 0, fl = 0;
        if (EVP_DecryptInit_ex(ctx, cph, NULL, key, iv) != 1 ||
            (!gcm && EVP_CIPHER_CTX_set_padding(ctx, 1) != 1) ||
            EVP_DecryptUpdate(ctx, plain + pn, &ol, ct, (int)C) != 1 ||
            (gcm && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, (void *)tag) != 1) ||
            EVP_DecryptFinal_ex(ctx, plain + pn + ol, &fl) != 1) {
            st = sp_error(SP_ECRYPTO, "file '%s': decryption failed (%s) at block byte %zu: wrong dec_key, wrong "
                          "dec_mode, or corrupted file", file, mode_name(want), pos);
            break;
        }
        pn += (size_t)ol + (size_t)fl;
        pos += hdr + C;
    }
    EVP_CIPHER_CTX_free(ctx);
    if (st) { free(plain); return st; }
    *out = plain; *outn = pn;
    return SP_OK;
}

sp_status ck_encrypt_block(const char *file, uint32_t magic, const void *key, size_t keylen, const uint8_t *in,
                           size_t n, uint8_t **out, size_t *outn) {
    const EVP_CIPHER *cph = cipher_for(magic, keylen);
    if (!cph)
        return sp_error(SP_EINVAL, "file '%s': a %s key must be %s bytes, got %zu", file, mode_name(magic),
                        magic == CK_MAGIC_SM4 ? "16" : "16, 24 or 32", keylen);
    int gcm = magic == CK_MAGIC_GCM;
    size_t hdr = 4 + (gcm ? 16 : 0) + 4 + 4 + 16 + 4;
    size_t need = *outn + hdr + n + 32;
    uint8_t *o = realloc(*out, need);
    if (!o) return sp_error(SP_ENOMEM, "file '%s': out of memory encrypting", file);
    *out = o;
    uint8_t *b = o + *outn;
    uint8_t *q = b + 4 + (gcm ? 16 : 0);
    uint8_t iv[16];
    if (RAND_bytes(iv, 16) != 1) return sp_error(SP_ECRYPTO, "file '%s': no randomness for the IV", file);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return sp_error(SP_ENOMEM, "out of memory");
    int ol = 0, fl = 0;
    uint8_t *ct = q + 28;
    sp_status st = SP_OK;
    if (EVP_EncryptInit_ex(ctx, cph, NULL, key, iv) != 1 || EVP_EncryptUpdate(ctx, ct, &ol, in, (int)n) != 1 ||
        EVP_EncryptFinal_ex(ctx, ct + ol, &fl) != 1 ||
        (gcm && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, b + 4) != 1))
        st = sp_error(SP_ECRYPTO, "file '%s': encryption failed", file);
    EVP_CIPHER_CTX_free(ctx);
    if (st) return st;
    uint32_t C = (uint32_t)(ol + fl);
    wr32(b, magic);
    wr32(q, 4 + 16 + 4 + C);
    wr32(q + 4, 16);
    memcpy(q + 8, iv, 16);
    wr32(q + 24, C);
    *outn += hdr + C;
    return SP_OK;
}
