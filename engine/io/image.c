/* image.c — JPEG (libjpeg-turbo, libjpeg API) and PNG (libpng) decoding into uint8 HWC
 * pixels equal to PIL's: Image.open(f) then exif_transpose (JPEG) and convert("RGB"/"L").
 * Untrusted bytes: libjpeg's error_exit and libpng's error callback longjmp back here
 * (never exit()); the pixel count is checked from the header before any pixel buffer
 * is allocated; a truncated JPEG (libjpeg's "premature end of file" warning) is an
 * error, as in PIL; progressive JPEGs are limited to 1000 scans (a crafted file with
 * thousands of tiny scans would take minutes). */
#include "core/internal.h"
#include "io/image_internal.h"
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* ------------------------------------------------------------ config */

#define IMG_DEFAULT_MAX_PIXELS ((int64_t)178956970) /* PIL: 2 * MAX_IMAGE_PIXELS */
static _Atomic int64_t g_max_pixels = IMG_DEFAULT_MAX_PIXELS;

void sp_config_set_image_max_pixels(int64_t n) { g_max_pixels = n < 1 ? IMG_DEFAULT_MAX_PIXELS : n; }
int64_t sp_config_image_max_pixels(void) { return g_max_pixels; }

/* ------------------------------------------------------------ buffers */

void sp_imgbuf_free(sp_imgbuf *b) {
    if (!b) return;
    free(b->px);
    free(b->tmp);
    memset(b, 0, sizeof *b);
}

static int grow(unsigned char **p, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    unsigned char *q = realloc(*p, need);
    if (!q) return 0;
    *p = q;
    *cap = need;
    return 1;
}

#define MAX_FILE_BYTES ((size_t)1 << 30)

sp_status sp_img_read_file(const char *path, unsigned char **buf, size_t *cap, size_t *len) {
    *len = 0;
    uint64_t fsize;
    int fd = sp_io_open_regular(path, "an image file", &fsize, NULL);
    if (fd < 0) return SP_EIO; /* the message is set */
    if (fsize > MAX_FILE_BYTES) {
        close(fd);
        return sp_error(SP_EFORMAT, "%s: %llu bytes: larger than the 1 GiB an image file may have", path,
                        (unsigned long long)fsize);
    }
    size_t want = (size_t)fsize + 1; /* one more: a file that grew is read to its end */
    size_t n = 0;
    for (;;) {
        if (n == want) {
            if (want > MAX_FILE_BYTES) {
                close(fd);
                return sp_error(SP_EFORMAT, "%s: larger than the 1 GiB an image file may have", path);
            }
            want *= 2;
        }
        if (!grow(buf, cap, want)) {
            close(fd);
            return sp_error(SP_ENOMEM, "%s: out of memory reading %zu bytes", path, want);
        }
        ssize_t r = read(fd, *buf + n, want - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            sp_status st = sp_error(SP_EIO, "%s: read error: %s", path, strerror(errno));
            close(fd);
            return st;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    *len = n;
    return SP_OK;
}

/* ------------------------------------------------------------ pixel helpers */

/* PIL's RGB -> L (Convert.c L24). */
static void rgb_to_gray(unsigned char *dst, const unsigned char *src, size_t npx) {
    for (size_t i = 0; i < npx; i++, src += 3)
        dst[i] = (unsigned char)((src[0] * 19595u + src[1] * 38470u + src[2] * 7471u + 0x8000u) >> 16);
}

static void gray_to_rgb(unsigned char *dst, const unsigned char *src, size_t npx) {
    for (size_t i = 0; i < npx; i++, dst += 3) dst[0] = dst[1] = dst[2] = src[i];
}

/* PIL ImageOps.exif_transpose for orientation o (2..8) of an h x w x c image: writes
 * dst (dims swapped for 5..8). */
static void orient(unsigned char *dst, const unsigned char *src, int h, int w, int c, int o) {
    int oh = o >= 5 ? w : h, ow = o >= 5 ? h : w;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            int sy, sx;
            switch (o) {
            case 2: sy = y; sx = w - 1 - x; break;              /* FLIP_LEFT_RIGHT */
            case 3: sy = h - 1 - y; sx = w - 1 - x; break;      /* ROTATE_180 */
            case 4: sy = h - 1 - y; sx = x; break;              /* FLIP_TOP_BOTTOM */
            case 5: sy = x; sx = y; break;                      /* TRANSPOSE */
            case 6: sy = h - 1 - x; sx = y; break;              /* ROTATE_270 */
            case 7: sy = h - 1 - x; sx = w - 1 - y; break;      /* TRANSVERSE */
            default: sy = x; sx = w - 1 - y; break;             /* 8: ROTATE_90 */
            }
            memcpy(dst + ((size_t)y * ow + x) * c, src + ((size_t)sy * w + sx) * c, (size_t)c);
        }
}

/* The first APP1 "Exif\0\0" segment's IFD0 Orientation (0x0112), 1 when absent/invalid. */
static int exif_orientation(const unsigned char *p, size_t n) {
    if (n < 6 + 8 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    p += 6;
    n -= 6;
    int le;
    if (p[0] == 'I' && p[1] == 'I') le = 1;
    else if (p[0] == 'M' && p[1] == 'M') le = 0;
    else return 1;
#define U16(q) (le ? (unsigned)((q)[0] | (q)[1] << 8) : (unsigned)((q)[0] << 8 | (q)[1]))
#define U32(q) (le ? ((uint32_t)(q)[0] | (uint32_t)(q)[1] << 8 | (uint32_t)(q)[2] << 16 | (uint32_t)(q)[3] << 24) \
                   : ((uint32_t)(q)[0] << 24 | (uint32_t)(q)[1] << 16 | (uint32_t)(q)[2] << 8 | (uint32_t)(q)[3]))
    if (U16(p + 2) != 42) return 1;
    uint32_t ifd = U32(p + 4);
    if (ifd > n || n - ifd < 2) return 1;
    unsigned cnt = U16(p + ifd);
    for (unsigned i = 0; i < cnt; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 1;
        if (U16(p + e) == 0x0112) {
            unsigned type = U16(p + e + 2);
            unsigned v = type == 3 ? U16(p + e + 8) : type == 4 ? (unsigned)U32(p + e + 8) : 1;
            return v >= 1 && v <= 8 ? (int)v : 1;
        }
    }
    return 1;
#undef U16
#undef U32
}

/* Pixels decoded as stored (sc channels) in `src` -> b->px with `channels` (0 = sc) and
 * orientation o applied. src may be b->tmp. */
static sp_status finish(sp_imgbuf *b, const char *name, const unsigned char *src, int h, int w, int sc, int channels,
                        int o) {
    int c = channels ? channels : sc;
    size_t npx = (size_t)h * w;
    const unsigned char *cur = src;
    unsigned char *conv = NULL;
    if (c != sc) {
        /* conversion into px (src is tmp), then orientation from px into tmp -> px */
        if (!grow(&b->px, &b->cap, npx * c)) return sp_error(SP_ENOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
        if (c == 1) rgb_to_gray(b->px, cur, npx);
        else gray_to_rgb(b->px, cur, npx);
        conv = b->px;
        cur = conv;
    }
    if (o > 1) {
        unsigned char *dst;
        if (cur == b->px) {
            if (!grow(&b->tmp, &b->tcap, npx * c)) return sp_error(SP_ENOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
            memcpy(b->tmp, b->px, npx * c);
            cur = b->tmp;
        }
        if (!grow(&b->px, &b->cap, npx * c)) return sp_error(SP_ENOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
        dst = b->px;
        orient(dst, cur, h, w, c, o);
        if (o >= 5) { int t = h; h = w; w = t; }
    } else if (cur != b->px) {
        if (!grow(&b->px, &b->cap, npx * c)) return sp_error(SP_ENOMEM, "%s: out of memory for %dx%d pixels", name, w, h);
        memcpy(b->px, cur, npx * c);
    }
    b->h = h;
    b->w = w;
    b->c = c;
    return SP_OK;
}

/* ------------------------------------------------------------ JPEG */

#define JPEG_MAX_SCANS 1000

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 64];
} jerr_t;

typedef struct {
    struct jpeg_progress_mgr pub;
    jerr_t *err;
} jprog_t;

static void j_error_exit(j_common_ptr ci) {
    jerr_t *e = (jerr_t *)ci->err;
    char m[JMSG_LENGTH_MAX];
    (*ci->err->format_message)(ci, m);
    snprintf(e->msg, sizeof e->msg, "%s", m);
    longjmp(e->jb, 1);
}

static void j_emit(j_common_ptr ci, int level) {
    if (level >= 0) return;
    jerr_t *e = (jerr_t *)ci->err;
    if (ci->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(e->msg, sizeof e->msg, "truncated JPEG (premature end of data)");
        longjmp(e->jb, 1);
    }
    ci->err->num_warnings++;
}

static void j_progress(j_common_ptr ci) {
    jprog_t *p = (jprog_t *)ci->progress;
    j_decompress_ptr d = (j_decompress_ptr)ci;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(p->err->msg, sizeof p->err->msg, "progressive JPEG with more than %d scans refused", JPEG_MAX_SCANS);
        longjmp(p->err->jb, 1);
    }
}

typedef struct {
    struct jpeg_decompress_struct ci;
    jerr_t err;
    jprog_t prog;
    JSAMPROW rows[16];
} jctx;

/* probe_only: fill h/w/c (after orientation) without decoding pixels. */
static sp_status jpeg_decode(sp_imgbuf *b, const unsigned char *data, size_t n, const char *name, int channels,
                             int64_t max_pixels, int probe_only, int *ph, int *pw, int *pc) {
    jctx *x = calloc(1, sizeof *x);
    if (!x) return sp_error(SP_ENOMEM, "%s: out of memory", name);
    sp_status st = SP_OK;
    x->ci.err = jpeg_std_error(&x->err.pub);
    x->err.pub.error_exit = j_error_exit;
    x->err.pub.emit_message = j_emit;
    if (setjmp(x->err.jb)) {
        st = sp_error(SP_EFORMAT, "%s: %s%s", name, strncmp(x->err.msg, "truncated", 9) && strncmp(x->err.msg, "progressive", 11) ? "corrupt JPEG: " : "", x->err.msg);
        goto done;
    }
    jpeg_create_decompress(&x->ci);
    x->prog.pub.progress_monitor = j_progress;
    x->prog.err = &x->err;
    x->ci.progress = &x->prog.pub;
    jpeg_mem_src(&x->ci, data, (unsigned long)n);
    jpeg_save_markers(&x->ci, JPEG_APP0 + 1, 0xffff);
    jpeg_read_header(&x->ci, TRUE);
    int sc;
    if (x->ci.jpeg_color_space == JCS_GRAYSCALE && x->ci.num_components == 1) sc = 1;
    else if ((x->ci.jpeg_color_space == JCS_YCbCr || x->ci.jpeg_color_space == JCS_RGB) && x->ci.num_components == 3) sc = 3;
    else {
        st = sp_error(SP_EFORMAT, "%s: JPEG colour space %s with %d components is not supported (grayscale, YCbCr and RGB are)",
                      name, x->ci.jpeg_color_space == JCS_CMYK ? "CMYK" : x->ci.jpeg_color_space == JCS_YCCK ? "YCCK" : "unknown",
                      x->ci.num_components);
        goto done;
    }
    int64_t h = x->ci.image_height, w = x->ci.image_width;
    if (h < 1 || w < 1 || h * w > max_pixels) {
        st = sp_error(SP_EFORMAT, "%s: JPEG header declares %lldx%lld = %lld pixels, more than the limit %lld "
                      "(sp_config_set_image_max_pixels)", name, (long long)w, (long long)h, (long long)(h * w),
                      (long long)max_pixels);
        goto done;
    }
    int o = 1;
    for (jpeg_saved_marker_ptr m = x->ci.marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            o = exif_orientation(m->data, m->data_length);
            break;
        }
    if (probe_only) {
        *ph = (int)(o >= 5 ? w : h);
        *pw = (int)(o >= 5 ? h : w);
        *pc = sc;
        goto done;
    }
    x->ci.out_color_space = sc == 1 ? JCS_GRAYSCALE : JCS_RGB;
    x->ci.dct_method = JDCT_ISLOW;
    x->ci.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&x->ci);
    if ((int64_t)x->ci.output_height != h || (int64_t)x->ci.output_width != w || x->ci.output_components != sc) {
        st = sp_error(SP_EFORMAT, "%s: JPEG decoder output %ux%ux%d differs from the header", name, x->ci.output_width,
                      x->ci.output_height, x->ci.output_components);
        goto done;
    }
    size_t npx = (size_t)h * (size_t)w;
    int direct = (channels == 0 || channels == sc) && o == 1;
    unsigned char *dst;
    if (direct) {
        if (!grow(&b->px, &b->cap, npx * sc)) { st = sp_error(SP_ENOMEM, "%s: out of memory for %lldx%lld pixels", name, (long long)w, (long long)h); goto done; }
        dst = b->px;
    } else {
        if (!grow(&b->tmp, &b->tcap, npx * sc)) { st = sp_error(SP_ENOMEM, "%s: out of memory for %lldx%lld pixels", name, (long long)w, (long long)h); goto done; }
        dst = b->tmp;
    }
    size_t stride = (size_t)w * sc;
    while (x->ci.output_scanline < x->ci.output_height) {
        unsigned k = 0, y0 = x->ci.output_scanline;
        for (; k < 16 && y0 + k < x->ci.output_height; k++) x->rows[k] = dst + (size_t)(y0 + k) * stride;
        if (jpeg_read_scanlines(&x->ci, x->rows, k) == 0) {
            st = sp_error(SP_EFORMAT, "%s: corrupt JPEG: no progress at scanline %u", name, y0);
            goto done;
        }
    }
    /* the end of the data is not read (jpeg_finish_decompress): bytes after the last
     * scan, as PIL, are ignored */
    if (direct) {
        b->h = (int)h; b->w = (int)w; b->c = sc;
    } else {
        st = finish(b, name, b->tmp, (int)h, (int)w, sc, channels, o);
    }
done:
    jpeg_destroy_decompress(&x->ci);
    free(x);
    return st;
}

/* ------------------------------------------------------------ PNG */

typedef struct {
    const unsigned char *data;
    size_t n, pos;
    char msg[256];
} pngsrc;

static void png_err_fn(png_structp png, png_const_charp msg) {
    pngsrc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static void png_read_fn(png_structp png, png_bytep out, size_t len) {
    pngsrc *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "truncated PNG (premature end of data)");
    memcpy(out, s->data + s->pos, len);
    s->pos += len;
}

typedef struct {
    png_structp png;
    png_infop info;
    pngsrc src;
    png_bytep *rows;
} pctx;

static sp_status png_decode(sp_imgbuf *b, const unsigned char *data, size_t n, const char *name, int channels,
                            int64_t max_pixels, int probe_only, int *ph, int *pw, int *pc) {
    pctx *x = calloc(1, sizeof *x);
    if (!x) return sp_error(SP_ENOMEM, "%s: out of memory", name);
    sp_status st = SP_OK;
    x->src.data = data;
    x->src.n = n;
    x->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &x->src, png_err_fn, png_warn_fn);
    if (!x->png || !(x->info = png_create_info_struct(x->png))) {
        st = sp_error(SP_ENOMEM, "%s: out of memory (libpng)", name);
        goto done;
    }
    if (setjmp(png_jmpbuf(x->png))) {
        st = sp_error(SP_EFORMAT, "%s: %s%s", name, strncmp(x->src.msg, "truncated", 9) ? "corrupt PNG: " : "", x->src.msg);
        goto done;
    }
    png_set_read_fn(x->png, &x->src, png_read_fn);
    png_set_user_limits(x->png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(x->png, 64u << 20);
    png_read_info(x->png, x->info);
    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(x->png, x->info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    int64_t h = h32, w = w32;
    if (h < 1 || w < 1 || h * w > max_pixels) {
        st = sp_error(SP_EFORMAT, "%s: PNG header declares %lldx%lld = %lld pixels, more than the limit %lld "
                      "(sp_config_set_image_max_pixels)", name, (long long)w, (long long)h, (long long)(h * w),
                      (long long)max_pixels);
        goto done;
    }
    int gray = !(ctype & PNG_COLOR_MASK_COLOR) && ctype != PNG_COLOR_TYPE_PALETTE;
    int sc = gray ? 1 : 3;
    if (probe_only) {
        *ph = (int)h; *pw = (int)w; *pc = sc;
        goto done;
    }
    /* PIL: a 16-bit grayscale PNG opens as "I;16" and convert("L") clips to 255; every
     * other 16-bit sample keeps its high byte. */
    int gray16 = gray && depth == 16;
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(x->png);
    if (gray && depth < 8) png_set_expand_gray_1_2_4_to_8(x->png);
    if (depth == 16 && !gray16) png_set_strip_16(x->png);
    if (gray16) png_set_swap(x->png); /* host-order (little-endian) 16-bit samples */
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(x->png, x->info, PNG_INFO_tRNS)) png_set_strip_alpha(x->png);
    png_set_interlace_handling(x->png);
    png_read_update_info(x->png, x->info);
    size_t bps = gray16 ? 2 : 1;
    size_t rb = png_get_rowbytes(x->png, x->info);
    if (rb != (size_t)w * sc * bps) {
        st = sp_error(SP_EFORMAT, "%s: PNG rows of %zu bytes after expansion (expected %lld)", name, rb,
                      (long long)(w * sc * (int64_t)bps));
        goto done;
    }
    size_t npx = (size_t)h * (size_t)w;
    int direct = !gray16 && (channels == 0 || channels == sc);
    unsigned char *dst;
    if (direct) {
        if (!grow(&b->px, &b->cap, npx * sc)) { st = sp_error(SP_ENOMEM, "%s: out of memory for %lldx%lld pixels", name, (long long)w, (long long)h); goto done; }
        dst = b->px;
    } else {
        if (!grow(&b->tmp, &b->tcap, npx * sc * bps)) { st = sp_error(SP_ENOMEM, "%s: out of memory for %lldx%lld pixels", name, (long long)w, (long long)h); goto done; }
        dst = b->tmp;
    }
    x->rows = malloc(sizeof(png_bytep) * (size_t)h);
    if (!x->rows) { st = sp_error(SP_ENOMEM, "%s: out of memory", name); goto done; }
    for (int64_t y = 0; y < h; y++) x->rows[y] = dst + (size_t)y * rb;
    png_read_image(x->png, x->rows);
    if (gray16) {
        const uint16_t *s16 = (const uint16_t *)dst;
        for (size_t i = 0; i < npx; i++) dst[i] = s16[i] > 255 ? 255 : (unsigned char)s16[i];
    }
    if (direct) {
        b->h = (int)h; b->w = (int)w; b->c = sc;
    } else {
        st = finish(b, name, b->tmp, (int)h, (int)w, sc, channels, 1);
    }
done:
    if (x->png) png_destroy_read_struct(&x->png, x->info ? &x->info : NULL, NULL);
    free(x->rows);
    free(x);
    return st;
}

/* ------------------------------------------------------------ entry points */

static int is_jpeg(const unsigned char *d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }
static int is_png(const unsigned char *d, size_t n) { return n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0; }

static sp_status dispatch(sp_imgbuf *b, const unsigned char *data, size_t n, const char *name, int channels,
                          int64_t max_pixels, int probe, int *h, int *w, int *c) {
    if (channels != 0 && channels != 1 && channels != 3)
        return sp_error(SP_EINVAL, "%s: channels must be 0 (as stored), 1 (gray) or 3 (RGB), got %d", name, channels);
    if (n == 0) return sp_error(SP_EFORMAT, "%s: empty file (0 bytes), expected a JPEG or PNG image", name);
    if (is_jpeg(data, n)) return jpeg_decode(b, data, n, name, channels, max_pixels, probe, h, w, c);
    if (is_png(data, n)) return png_decode(b, data, n, name, channels, max_pixels, probe, h, w, c);
    char hex[3 * 8 + 1] = "";
    size_t k = n < 8 ? n : 8;
    for (size_t i = 0; i < k; i++) snprintf(hex + 3 * i, 4, "%02x ", data[i]);
    if (k) hex[3 * k - 1] = 0;
    return sp_error(SP_EFORMAT, "%s: not a JPEG or PNG image (starts with %s; expected ff d8 ff or 89 50 4e 47 0d 0a 1a 0a)",
                    name, hex);
}

sp_status sp_img_decode_into(sp_imgbuf *b, const unsigned char *data, size_t n, const char *name, int channels,
                             int64_t max_pixels) {
    return dispatch(b, data, n, name, channels, max_pixels, 0, NULL, NULL, NULL);
}

static sp_status to_tensor(sp_tensor **out, const sp_imgbuf *b) {
    int64_t shape[3] = {b->h, b->w, b->c};
    return sp_tensor_from_data(out, SP_UINT8, 3, shape, b->px, (size_t)b->h * b->w * b->c);
}

sp_status sp_image_decode_mem(sp_tensor **out, const void *data, size_t nbytes, const char *name, int channels) {
    if (!out) return sp_error(SP_EINVAL, "sp_image_decode_mem: NULL out");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && nbytes) return sp_error(SP_EINVAL, "%s: NULL data", name);
    sp_imgbuf b = {0};
    sp_status st = sp_img_decode_into(&b, data, nbytes, name, channels, g_max_pixels);
    if (!st) st = to_tensor(out, &b);
    sp_imgbuf_free(&b);
    return st;
}

sp_status sp_image_decode(sp_tensor **out, const char *path, int channels) {
    if (!out || !path) return sp_error(SP_EINVAL, "sp_image_decode: NULL argument");
    *out = NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    sp_status st = sp_img_read_file(path, &buf, &cap, &len);
    if (!st) {
        sp_imgbuf b = {0};
        st = sp_img_decode_into(&b, buf, len, path, channels, g_max_pixels);
        if (!st) st = to_tensor(out, &b);
        sp_imgbuf_free(&b);
    }
    free(buf);
    return st;
}

sp_status sp_image_probe(const char *path, int *h, int *w, int *c) {
    if (!path || !h || !w || !c) return sp_error(SP_EINVAL, "sp_image_probe: NULL argument");
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    sp_status st = sp_img_read_file(path, &buf, &cap, &len);
    if (!st) st = dispatch(NULL, buf, len, path, 0, g_max_pixels, 1, h, w, c);
    free(buf);
    return st;
}
