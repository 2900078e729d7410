/* fuzz_ckpt.c — libFuzzer target for the .ckpt reader (plain, CRC-checked, and
 * encrypted with a fixed key so the decryption path is reached). */
#include "spore.h"
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sp_ckpt *c = NULL;
    int flags = size && (data[size - 1] & 1) ? SP_CKPT_CRC : 0;
    if (sp_ckpt_open_memory(&c, data, size, "fuzz.ckpt", SP_CKPT_PROTO, flags, NULL, 0, NULL) == SP_OK) {
        for (int64_t i = 0; i < sp_ckpt_count(c); i++) {
            sp_tensor *t = NULL;
            if (sp_ckpt_tensor(c, i, &t) == SP_OK) {
                const volatile uint8_t *p = sp_tensor_data(t);
                size_t n = sp_tensor_nbytes(t);
                if (n) (void)p[n - 1];
                sp_tensor_free(t);
            }
        }
    }
    sp_ckpt_close(c);
    c = NULL;
    static const char *modes[3] = {"AES-GCM", "AES-CBC", "SM4-CBC"};
    if (sp_ckpt_open_memory(&c, data, size, "fuzz_enc.ckpt", SP_CKPT_AUTO, 0, "0123456789abcdef", 16,
                            modes[size % 3]) == SP_OK)
        sp_ckpt_close(c);
    return 0;
}
