/* image_internal.h — engine-private image decoding and transform entry points shared by
 * image.c, transforms.c and loader.c (never by the FFI). */
#ifndef SPORE_IO_IMAGE_INTERNAL_H
#define SPORE_IO_IMAGE_INTERNAL_H
#include "spore.h"

#include <stddef.h>
#include <stdint.h>

/* A reusable pixel buffer: decode into it again and again (the loader's workers keep
 * one each); px holds h*w*c uint8 HWC pixels after a successful decode. */
typedef struct sp_imgbuf {
    unsigned char *px;
    size_t cap;
    unsigned char *tmp; /* scratch for colour conversion / EXIF orientation */
    size_t tcap;
    int h, w, c;
} sp_imgbuf;

void sp_imgbuf_free(sp_imgbuf *b);

/* Decode a JPEG or PNG held in data[0..n) into b (channels 0, 1 or 3); errors name `name`.
 * max_pixels: the limit checked from the header, before any pixel allocation. */
sp_status sp_img_decode_into(sp_imgbuf *b, const unsigned char *data, size_t n, const char *name,
                             int channels, int64_t max_pixels);

/* Read a whole regular file (at most 1 GiB) into *buf (grown with realloc as needed,
 * *cap its capacity); *len bytes read. Errors name the file. */
sp_status sp_img_read_file(const char *path, unsigned char **buf, size_t *cap, size_t *len);

/* Per-thread transform scratch (grown as needed). */
typedef struct sp_img_scratch {
    unsigned char *u8[2];
    size_t u8cap[2];
    float *f32[2];
    size_t f32cap[2];
    void *taps;
    size_t tapcap;
} sp_img_scratch;
void sp_img_scratch_free(sp_img_scratch *s);

/* The result of sp_img_run: HWC pixels (uint8 when f32 == NULL) held by the scratch or
 * the source, the dtype the pipeline says (TypeCast) and the output layout. */
typedef struct sp_img_result {
    const unsigned char *u8;
    const float *f32;
    int h, w, c, chw, dtype;
    const sp_img_op *norm; /* a last Normalize on the uint8 pixels, applied by sp_img_write */
} sp_img_result;

/* Run ops on one HWC image (uint8 src_u8 or float32 src_f32) of h x w x c seeded by
 * seed; errors name `name` (the file, or "image i"). */
sp_status sp_img_run(const unsigned char *src_u8, const float *src_f32, int h, int w, int c, const sp_img_op *ops,
                     int nops, uint64_t seed, sp_img_scratch *s, sp_img_result *r, const char *name);
/* The result's shape (CHW or HWC) and numel. */
void sp_img_result_shape(const sp_img_result *r, int64_t shape[3]);
/* Write r into dst as dtype (converted; CHW when r->chw). */
void sp_img_write(const sp_img_result *r, int dtype, void *dst);
#endif
