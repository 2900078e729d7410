/* fuzz_pth.c — libFuzzer target for the PyTorch .pth reader (zip directory, restricted
 * unpickler, storage views). */
#include "spore.h"
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sp_ckpt *c = NULL;
    if (sp_ckpt_open_memory(&c, data, size, "fuzz.pth", SP_CKPT_PTH, 0, NULL, 0, NULL) == SP_OK) {
        for (int64_t i = 0; i < sp_ckpt_count(c); i++) {
            sp_tensor *t = NULL;
            if (sp_ckpt_tensor(c, i, &t) == SP_OK) {
                const volatile uint8_t *p = sp_tensor_data(t);
                size_t n = sp_tensor_nbytes(t);
                if (n) (void)p[0], (void)p[n - 1];
                sp_tensor_free(t);
            }
        }
    }
    sp_ckpt_close(c);
    return 0;
}
