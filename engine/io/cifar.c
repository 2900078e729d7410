/* cifar.c — CIFAR-10 / CIFAR-100 binary batches: fixed-size records
 * (label byte(s) + 3x32x32 CHW pixels). The file size must be a whole number of
 * records and every label is range-checked. */
#include "core/internal.h"
#include "io/data_read.h"

#include <stdlib.h>
#include <string.h>

sp_status sp_cifar_load(sp_tensor **images, sp_tensor **labels, const char *path, int label_bytes) {
    if (!images || !labels || !path) return sp_error(SP_EINVAL, "sp_cifar_load: NULL argument");
    *images = *labels = NULL;
    if (label_bytes != 1 && label_bytes != 2)
        return sp_error(SP_EINVAL, "%s: label_bytes must be 1 (CIFAR-10) or 2 (CIFAR-100), got %d", path, label_bytes);
    const size_t rec = (size_t)label_bytes + 3 * 32 * 32;
    unsigned char *buf = NULL;
    size_t len = 0;
    sp_status st = sp_data_read_all(path, (size_t)1 << 32, &buf, &len);
    if (st) return st;
    if (len == 0 || len % rec != 0) {
        free(buf);
        return sp_error(SP_EFORMAT, "%s: not a CIFAR binary batch: %zu bytes is not a whole number of %zu-byte records "
                        "(%d label byte%s + 3x32x32 image)", path, len, rec, label_bytes, label_bytes == 1 ? "" : "s");
    }
    int64_t n = (int64_t)(len / rec);
    int64_t ishape[4] = {n, 32, 32, 3}, lshape[1] = {n};
    sp_tensor *im = NULL, *lb = NULL;
    if ((st = sp_tensor_empty(&im, SP_UINT8, 4, ishape)) || (st = sp_tensor_empty(&lb, SP_INT32, 1, lshape))) {
        sp_tensor_free(im);
        free(buf);
        return st;
    }
    unsigned char *ip = sp_host_data(im);
    int32_t *lp = sp_host_data(lb);
    int maxlab = label_bytes == 1 ? 9 : 99;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *r = buf + (size_t)i * rec;
        int lab = r[label_bytes - 1];
        if (lab > maxlab) {
            sp_status e = sp_error(SP_EFORMAT, "%s: record %lld has label %d (expected 0..%d)", path, (long long)i, lab, maxlab);
            sp_tensor_free(im); sp_tensor_free(lb); free(buf);
            return e;
        }
        lp[i] = lab;
        const unsigned char *px = r + label_bytes;
        unsigned char *o = ip + (size_t)i * 3072;
        for (int c = 0; c < 3; c++)
            for (int p = 0; p < 1024; p++) o[p * 3 + c] = px[c * 1024 + p];
    }
    free(buf);
    *images = im;
    *labels = lb;
    return SP_OK;
}
