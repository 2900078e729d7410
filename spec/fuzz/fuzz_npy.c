/* fuzz_npy.c — libFuzzer target for the .npy reader (strict header dict parser, payload
 * size, byte swapping, bool validation). */
#include "spore.h"
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sp_tensor *t = NULL;
    if (sp_npy_load_mem(&t, data, size, "fuzz.npy") == SP_OK) {
        const volatile uint8_t *p = sp_tensor_data(t);
        size_t n = sp_tensor_nbytes(t);
        if (n) (void)p[0], (void)p[n - 1];
        sp_tensor_free(t);
    }
    return 0;
}
