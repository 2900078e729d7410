/* fuzz_png.c — libFuzzer target for the PNG decoder (libpng behind
 * sp_image_decode_mem: png_error longjmp, truncation, bit depths, palettes, tRNS,
 * interlacing) and the transforms on what it decodes. The pixel limit is lowered to 256 K
 * so that a header declaring a big image is refused rather than allocated. */
#include "spore.h"
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int64_t old = sp_config_image_max_pixels();
    sp_config_set_image_max_pixels((int64_t)1 << 18);
    int ch = size ? (data[size - 1] % 3 == 0 ? 0 : data[size - 1] % 3 == 1 ? 1 : 3) : 0;
    sp_tensor *t = NULL;
    if (sp_image_decode_mem(&t, data, size, "fuzz.png", ch) == SP_OK) {
        const volatile uint8_t *p = sp_tensor_data(t);
        size_t n = sp_tensor_nbytes(t);
        if (n) (void)p[0], (void)p[n - 1];
        sp_img_op ops[3];
        memset(ops, 0, sizeof ops);
        ops[0].kind = SP_IMG_RESIZE; ops[0].h = 9; ops[0].resize_short = 1;
        ops[1].kind = SP_IMG_RANDOM_CROP; ops[1].h = 7; ops[1].w = 8; ops[1].pad = 3; ops[1].pad_mode = SP_BORDER_REFLECT;
        ops[2].kind = SP_IMG_HWC2CHW;
        sp_tensor *o = NULL;
        if (sp_image_transform(&o, t, ops, 3, size) == SP_OK) sp_tensor_free(o);
        sp_tensor_free(t);
    }
    sp_config_set_image_max_pixels(old);
    return 0;
}
