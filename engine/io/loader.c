/* loader.c — the threaded image loader: files -> decode -> transforms -> batches.
 *
 * Epoch positions 0..count-1 (order[p] indexes paths) are handed to worker threads in
 * increasing order, at most `window` = prefetch * batch_size positions ahead of the
 * consumer (bounded memory: one output image per slot). Each worker keeps its own file
 * buffer, decode buffer and transform scratch; it writes the transformed image into
 * the slot of its position. sp_loader_next takes slots strictly in position order, so
 * batches are the same whatever the thread count; image i's random ops draw from
 * sp_image_seed(seed, epoch, i). With skip_bad an image that fails to read or decode is
 * counted and skipped (the next good images fill the batch), else its error ends the
 * epoch. */
#include "core/internal.h"
#include "io/image_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE = 0, SLOT_BUSY = 1, SLOT_DONE = 2 };

typedef struct {
    int state;
    sp_status st;
    char *msg;          /* error message (malloc'd) when st != 0 */
    unsigned char *data;
    size_t cap, nbytes;
    int64_t shape[3];
    int dtype;
    int64_t index;      /* index into paths */
} slot;

struct sp_loader {
    char **paths;
    int32_t *labels;
    int64_t n;
    sp_img_op *ops;
    int nops;
    sp_loader_config cfg;
    pthread_t *th;
    int nth;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    int64_t *order;
    int64_t count, epoch, next, consumed, window;
    int busy, stop, ended, started;
    slot *slots;
    int64_t skipped;
    char last_skip[512];
};

static void *worker(void *arg) {
    sp_loader *l = arg;
    unsigned char *file = NULL;
    size_t fcap = 0;
    sp_imgbuf ib = {0};
    sp_img_scratch sc = {0};
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        if (l->next < l->count && l->next < l->consumed + l->window) {
            int64_t p = l->next++;
            slot *s = &l->slots[p % l->window];
            s->state = SLOT_BUSY;
            s->index = l->order[p];
            const int64_t epoch = l->epoch;
            l->busy++;
            pthread_mutex_unlock(&l->mu);

            const char *path = l->paths[s->index];
            size_t len = 0;
            sp_img_result r;
            sp_status st = sp_img_read_file(path, &file, &fcap, &len);
            if (!st) st = sp_img_decode_into(&ib, file, len, path, l->cfg.channels, sp_config_image_max_pixels());
            if (!st)
                st = sp_img_run(ib.px, NULL, ib.h, ib.w, ib.c, l->ops, l->nops, sp_image_seed(l->cfg.seed, epoch, s->index),
                                &sc, &r, path);
            free(s->msg);
            s->msg = NULL;
            if (!st) {
                int dt = l->cfg.out_dtype >= 0 ? l->cfg.out_dtype : r.dtype;
                sp_img_result_shape(&r, s->shape);
                size_t nb = (size_t)(s->shape[0] * s->shape[1] * s->shape[2]) * sp_dtype_size(dt);
                if (nb > s->cap) {
                    unsigned char *q = realloc(s->data, nb);
                    if (!q) st = sp_error(SP_ENOMEM, "%s: out of memory for the transformed image", path);
                    else { s->data = q; s->cap = nb; }
                }
                if (!st) {
                    sp_img_write(&r, dt, s->data);
                    s->nbytes = nb;
                    s->dtype = dt;
                }
            }
            if (st) s->msg = strdup(sp_last_error());
            s->st = st;

            pthread_mutex_lock(&l->mu);
            s->state = SLOT_DONE;
            l->busy--;
            pthread_cond_broadcast(&l->cv_done);
            continue;
        }
        pthread_cond_wait(&l->cv_work, &l->mu);
    }
    pthread_mutex_unlock(&l->mu);
    free(file);
    sp_imgbuf_free(&ib);
    sp_img_scratch_free(&sc);
    return NULL;
}

void sp_loader_free(sp_loader *l) {
    if (!l) return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nth; i++) pthread_join(l->th[i], NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_work);
        pthread_cond_destroy(&l->cv_done);
    }
    if (l->paths)
        for (int64_t i = 0; i < l->n; i++) free(l->paths[i]);
    if (l->slots)
        for (int64_t i = 0; i < l->window; i++) { free(l->slots[i].data); free(l->slots[i].msg); }
    free(l->paths);
    free(l->labels);
    free(l->ops);
    free(l->th);
    free(l->order);
    free(l->slots);
    free(l);
}

sp_status sp_loader_new(sp_loader **out, const char *const *paths, const int32_t *labels, int64_t n,
                        const sp_img_op *ops, int nops, const sp_loader_config *cfg) {
    if (!out || !cfg || n < 0 || (n > 0 && !paths) || nops < 0 || (nops > 0 && !ops))
        return sp_error(SP_EINVAL, "sp_loader_new: bad arguments");
    *out = NULL;
    if (cfg->batch_size < 1) return sp_error(SP_EINVAL, "loader: batch_size %d must be >= 1", cfg->batch_size);
    if (cfg->threads < 1 || cfg->threads > 256) return sp_error(SP_EINVAL, "loader: threads %d must be within 1..256", cfg->threads);
    if (cfg->prefetch < 0 || cfg->prefetch > 1024) return sp_error(SP_EINVAL, "loader: prefetch %d must be within 0..1024", cfg->prefetch);
    if (cfg->channels != 0 && cfg->channels != 1 && cfg->channels != 3)
        return sp_error(SP_EINVAL, "loader: channels must be 0 (as stored), 1 or 3, got %d", cfg->channels);
    if (cfg->out_dtype != -1 && (!sp_dtype_valid(cfg->out_dtype) || cfg->out_dtype == SP_BFLOAT16 || cfg->out_dtype == SP_FLOAT16))
        return sp_error(SP_EINVAL, "loader: out_dtype %d is not supported", cfg->out_dtype);
    /* the ops are checked once on a nominal image so that a bad list fails here */
    if (nops > 0) {
        sp_status st = sp_image_out_info(224, 224, cfg->channels ? cfg->channels : 3, SP_UINT8, ops, nops, NULL, NULL);
        if (st) return st;
    }
    sp_loader *l = calloc(1, sizeof *l);
    if (!l) return sp_error(SP_ENOMEM, "loader: out of memory");
    l->n = n;
    l->cfg = *cfg;
    if (l->cfg.prefetch == 0) l->cfg.prefetch = 2;
    l->window = (int64_t)l->cfg.prefetch * l->cfg.batch_size;
    l->paths = calloc((size_t)(n ? n : 1), sizeof(char *));
    l->labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    l->ops = malloc(sizeof(sp_img_op) * (size_t)(nops ? nops : 1));
    l->slots = calloc((size_t)l->window, sizeof(slot));
    l->th = calloc((size_t)cfg->threads, sizeof(pthread_t));
    if (!l->paths || !l->labels || !l->ops || !l->slots || !l->th) { sp_loader_free(l); return sp_error(SP_ENOMEM, "loader: out of memory"); }
    for (int64_t i = 0; i < n; i++) {
        if (!paths[i]) { sp_loader_free(l); return sp_error(SP_EINVAL, "loader: path %lld is NULL", (long long)i); }
        if (!(l->paths[i] = strdup(paths[i]))) { sp_loader_free(l); return sp_error(SP_ENOMEM, "loader: out of memory"); }
        l->labels[i] = labels ? labels[i] : 0;
    }
    if (nops) memcpy(l->ops, ops, sizeof(sp_img_op) * (size_t)nops);
    l->nops = nops;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_work, NULL);
    pthread_cond_init(&l->cv_done, NULL);
    l->started = 1;
    for (int i = 0; i < cfg->threads; i++) {
        if (pthread_create(&l->th[i], NULL, worker, l) != 0) {
            l->nth = i;
            sp_loader_free(l);
            return sp_error(SP_ENOMEM, "loader: cannot start worker thread %d", i + 1);
        }
        l->nth = i + 1;
    }
    *out = l;
    return SP_OK;
}

sp_status sp_loader_start(sp_loader *l, const int64_t *order, int64_t count, int64_t epoch) {
    if (!l || count < 0 || (count > 0 && !order && count != l->n))
        return sp_error(SP_EINVAL, "sp_loader_start: bad arguments (order NULL needs count = %lld)", l ? (long long)l->n : 0LL);
    int64_t *o = malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    if (!o) return sp_error(SP_ENOMEM, "loader: out of memory");
    for (int64_t i = 0; i < count; i++) {
        o[i] = order ? order[i] : i;
        if (o[i] < 0 || o[i] >= l->n) {
            free(o);
            return sp_error(SP_EINVAL, "loader: order[%lld] = %lld out of range [0, %lld)", (long long)i, (long long)(order ? order[i] : i),
                            (long long)l->n);
        }
    }
    pthread_mutex_lock(&l->mu);
    l->next = l->count; /* hand out nothing more; wait for work in flight */
    while (l->busy > 0) pthread_cond_wait(&l->cv_done, &l->mu);
    free(l->order);
    l->order = o;
    l->count = count;
    l->epoch = epoch;
    l->next = l->consumed = 0;
    l->ended = 0;
    for (int64_t i = 0; i < l->window; i++) l->slots[i].state = SLOT_FREE;
    pthread_cond_broadcast(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
    return SP_OK;
}

sp_status sp_loader_next(sp_loader *l, sp_tensor **images, sp_tensor **labels) {
    if (!l || !images || !labels) return sp_error(SP_EINVAL, "sp_loader_next: NULL argument");
    *images = *labels = NULL;
    const int bs = l->cfg.batch_size;
    sp_tensor *im = NULL;
    int32_t *lb = malloc(sizeof(int32_t) * (size_t)bs);
    if (!lb) return sp_error(SP_ENOMEM, "loader: out of memory");
    int64_t got = 0;
    int64_t bshape[4] = {0};
    int bdt = -1;
    size_t per = 0;
    sp_status err = SP_OK;
    pthread_mutex_lock(&l->mu);
    while (!l->ended && got < bs && l->consumed < l->count) {
        slot *s = &l->slots[l->consumed % l->window];
        while (s->state != SLOT_DONE) pthread_cond_wait(&l->cv_done, &l->mu);
        pthread_mutex_unlock(&l->mu);
        /* the slot is the consumer's until it is freed */
        int take = 0;
        if (s->st) {
            if (l->cfg.skip_bad) {
                pthread_mutex_lock(&l->mu);
                l->skipped++;
                snprintf(l->last_skip, sizeof l->last_skip, "%s", s->msg ? s->msg : "?");
                pthread_mutex_unlock(&l->mu);
            } else {
                err = sp_error(s->st, "%s", s->msg ? s->msg : "loader: image failed");
            }
        } else if (!im) {
            bshape[0] = bs; bshape[1] = s->shape[0]; bshape[2] = s->shape[1]; bshape[3] = s->shape[2];
            bdt = s->dtype;
            per = s->nbytes;
            err = sp_tensor_empty(&im, bdt, 4, bshape);
            take = !err;
        } else if (s->shape[0] != bshape[1] || s->shape[1] != bshape[2] || s->shape[2] != bshape[3] || s->dtype != bdt) {
            err = sp_error(SP_EINVAL, "%s: the transformed image is [%lld,%lld,%lld], the batch's images are [%lld,%lld,%lld] "
                           "(end the pipeline with a Resize/crop to one size)", l->paths[s->index], (long long)s->shape[0],
                           (long long)s->shape[1], (long long)s->shape[2], (long long)bshape[1], (long long)bshape[2],
                           (long long)bshape[3]);
        } else {
            take = 1;
        }
        if (take) {
            memcpy((char *)sp_host_data(im) + (size_t)got * per, s->data, per);
            lb[got++] = l->labels[s->index];
        }
        pthread_mutex_lock(&l->mu);
        s->state = SLOT_FREE;
        l->consumed++;
        pthread_cond_broadcast(&l->cv_work);
        if (err) {
            l->ended = 1;
            l->next = l->count;
            break;
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (err || got == 0 || (got < bs && l->cfg.drop_remainder)) {
        sp_tensor_free(im);
        free(lb);
        return err;
    }
    sp_status st = SP_OK;
    if (got < bs) {
        bshape[0] = got;
        st = sp_tensor_resize(im, 4, bshape);
    }
    int64_t ls[1] = {got};
    if (!st) st = sp_tensor_from_data(labels, SP_INT32, 1, ls, lb, sizeof(int32_t) * (size_t)got);
    free(lb);
    if (st) { sp_tensor_free(im); return st; }
    *images = im;
    return SP_OK;
}

int64_t sp_loader_skipped(const sp_loader *l) { return l ? l->skipped : 0; }
const char *sp_loader_last_skip(const sp_loader *l) { return l ? l->last_skip : ""; }
