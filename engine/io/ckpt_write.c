/* ckpt_write.c — streaming, atomic checkpoint writers. .ckpt: one serialized
 * Checkpoint message per value, packed by protobuf-c straight into our output
 * buffer (tensor bytes are not copied into an intermediate message), sliced at
 * 512 MiB, scalars written as dims [0]; optional CRC trailer and encryption.
 * safetensors: tensors held until commit, header entries and data in insertion order (MindSpore
 * reads only headers in data-offset order); crc_num over the sorted keys.
 *
 * Saving is atomic and collision-free:
 *  - the writer holds an exclusive flock on ".<name>.lock" in the target's folder from
 *    open to commit/abort, so a second saver of the same path (another process) waits;
 *    a second writer of the same path inside this process fails clearly instead of
 *    deadlocking. The lock file is removed by its holder before unlocking; a waiter
 *    re-checks, after locking, that the name still refers to the inode it locked.
 *  - content goes to a unique ".<name>.spore-<pid>-<16 hex>.tmp" in the same folder,
 *    created with O_CREAT|O_EXCL|O_NOFOLLOW (a planted file or symlink is never
 *    written through), fsync'd, renamed over the target, and the folder fsync'd.
 *  - on any error, and on abort, the temp file is removed and every descriptor closed.
 *  - temp files left by killed saves of the same target (same pattern, a pid that no
 *    longer exists) are removed at the next save of that target, under its lock. */
#include "io/ckpt_internal.h"
#include "checkpoint.pb-c.h"
#include "core/device.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WBUF ((size_t)1 << 20)

typedef struct st_item {
    char *name;
    sp_tensor *t;      /* contiguous alias (NULL for raw) */
    int dtype, ndim;
    int64_t shape[SP_MAX_DIMS];
} st_item;

struct sp_ckpt_writer {
    char *path;                       /* as given (messages) */
    char *tmp;                        /* temp file's path (messages) */
    char *base;                       /* target's name inside its folder */
    char *stem;                       /* base, cut to 200 bytes: names ".<stem>.lock" / ".<stem>.spore-..." */
    char *lockname, *tmpname;         /* relative to dfd */
    int dfd;                          /* the target's folder */
    int lockfd, locked, registered;   /* flock held on lockfd; entry in the in-process registry */
    int tmp_live;                     /* tmpname exists and is ours: removed on failure/abort */
    dev_t ddev; ino_t dino;           /* the folder's identity (in-process registry key, with base) */
    sp_ckpt_writer *next_held;        /* in-process registry of open writers */
    char **set; size_t nset, setcap;  /* names added so far (duplicates are refused) */
    size_t nentries;
    int fd, format, flags;
    uint8_t *key; size_t keylen; uint32_t magic;
    size_t slice;
    uint32_t crc;
    uint8_t *buf; size_t blen;        /* write buffer */
    uint8_t *ebuf; size_t elen;       /* plaintext chunk awaiting encryption */
    sp_status err;                    /* first failure (sticky) */
    char errmsg[1024];
    st_item *items; size_t nitems, cap;
};

static sp_status fail(sp_ckpt_writer *w, sp_status st) {
    if (!w->err) { w->err = st; snprintf(w->errmsg, sizeof w->errmsg, "%s", sp_last_error()); }
    return st;
}

static sp_status write_all(sp_ckpt_writer *w, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = write(w->fd, c, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return fail(w, sp_error(SP_EIO, "file '%s': write failed: %s", w->path, strerror(errno)));
        }
        c += k; n -= (size_t)k;
    }
    return SP_OK;
}

static sp_status flush_buf(sp_ckpt_writer *w) {
    sp_status st = w->blen ? write_all(w, w->buf, w->blen) : SP_OK;
    w->blen = 0;
    return st;
}

static sp_status out_raw(sp_ckpt_writer *w, const void *p, size_t n) {
    if (w->err) return w->err;
    if (n >= WBUF) {
        sp_status st = flush_buf(w);
        return st ? st : write_all(w, p, n);
    }
    if (w->blen + n > WBUF) { sp_status st = flush_buf(w); if (st) return st; }
    memcpy(w->buf + w->blen, p, n);
    w->blen += n;
    return SP_OK;
}

static sp_status encrypt_chunk(sp_ckpt_writer *w) {
    uint8_t *o = NULL; size_t on = 0;
    sp_status st = ck_encrypt_block(w->path, w->magic, w->key, w->keylen, w->ebuf, w->elen, &o, &on);
    if (!st) st = out_raw(w, o, on);
    free(o);
    w->elen = 0;
    return st ? fail(w, st) : SP_OK;
}

/* Plaintext file bytes: CRC, then encryption or the write buffer. */
static sp_status emit(sp_ckpt_writer *w, const void *p, size_t n) {
    if (w->err) return w->err;
    if (w->flags & SP_CKPT_CRC) w->crc = sp_crc32(w->crc, p, n);
    if (!w->key) return out_raw(w, p, n);
    const uint8_t *c = p;
    while (n) {
        size_t k = CK_ENC_CHUNK - w->elen;
        if (k > n) k = n;
        memcpy(w->ebuf + w->elen, c, k);
        w->elen += k; c += k; n -= k;
        if (w->elen == CK_ENC_CHUNK) { sp_status st = encrypt_chunk(w); if (st) return st; }
    }
    return SP_OK;
}

typedef struct { ProtobufCBuffer base; sp_ckpt_writer *w; } pbuf;
static void pbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    emit(((pbuf *)b)->w, data, len);
}

/* ---- in-process registry: one open writer per (folder, name) in this process. flock
 * locks belong to open file descriptions, so a second writer of the same path in this
 * process would wait on itself forever; it gets an error instead. */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static sp_ckpt_writer *held_head;

static int held_register(sp_ckpt_writer *w) {
    pthread_mutex_lock(&held_mu);
    for (sp_ckpt_writer *h = held_head; h; h = h->next_held)
        if (h->ddev == w->ddev && h->dino == w->dino && strcmp(h->stem, w->stem) == 0) {
            pthread_mutex_unlock(&held_mu);
            return -1;
        }
    w->next_held = held_head;
    held_head = w;
    w->registered = 1;
    pthread_mutex_unlock(&held_mu);
    return 0;
}

static void held_unregister(sp_ckpt_writer *w) {
    if (!w->registered) return;
    pthread_mutex_lock(&held_mu);
    for (sp_ckpt_writer **p = &held_head; *p; p = &(*p)->next_held)
        if (*p == w) { *p = w->next_held; break; }
    w->registered = 0;
    pthread_mutex_unlock(&held_mu);
}

/* Release the lock: the holder removes the lock file (only if the name still refers to
 * the inode it locked), then unlocks by closing. Waiters re-check the name after locking. */
static void unlock_target(sp_ckpt_writer *w) {
    if (w->lockfd >= 0) {
        struct stat a, b;
        if (w->locked && fstat(w->lockfd, &a) == 0 && fstatat(w->dfd, w->lockname, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            unlinkat(w->dfd, w->lockname, 0);
        close(w->lockfd);
        w->lockfd = -1;
        w->locked = 0;
    }
    held_unregister(w);
}

static void free_writer(sp_ckpt_writer *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    if (w->tmp_live) { unlinkat(w->dfd, w->tmpname, 0); w->tmp_live = 0; }
    unlock_target(w);
    if (w->dfd >= 0) close(w->dfd);
    for (size_t i = 0; i < w->setcap; i++) free(w->set[i]);
    free(w->set);
    for (size_t i = 0; i < w->nitems; i++) { free(w->items[i].name); sp_tensor_free(w->items[i].t); }
    free(w->items);
    if (w->key) { memset(w->key, 0, w->keylen); free(w->key); }
    /* the write buffers are counted in sp_mem_stats while the writer is open */
    if (w->buf) sp_mem_account(NULL, -(long long)WBUF);
    if (w->ebuf) sp_mem_account(NULL, -(long long)CK_ENC_CHUNK);
    free(w->buf); free(w->ebuf); free(w->path); free(w->tmp);
    free(w->base); free(w->stem); free(w->lockname); free(w->tmpname);
    free(w);
}

/* ---- names: a writer refuses a name it already has (open addressing, FNV-1a). */
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    while (*s) { h ^= (uint8_t)*s++; h *= 1099511628211ull; }
    return h;
}

static sp_status name_check(sp_ckpt_writer *w, const char *name) {
    if (w->setcap) {
        size_t m = w->setcap - 1;
        for (size_t i = name_hash(name) & m; w->set[i]; i = (i + 1) & m)
            if (strcmp(w->set[i], name) == 0)
                return sp_error(SP_EINVAL, "file '%s': tensor '%s' is added twice (names in a checkpoint must be unique)",
                                w->path, name);
    }
    return SP_OK;
}

static sp_status name_add(sp_ckpt_writer *w, const char *name) {
    if ((w->nset + 1) * 2 > w->setcap) {
        size_t cap = w->setcap ? w->setcap * 2 : 64;
        char **set = calloc(cap, sizeof *set);
        if (!set) return sp_error(SP_ENOMEM, "out of memory");
        for (size_t k = 0; k < w->setcap; k++)
            if (w->set[k]) {
                size_t i = name_hash(w->set[k]) & (cap - 1);
                while (set[i]) i = (i + 1) & (cap - 1);
                set[i] = w->set[k];
            }
        free(w->set);
        w->set = set; w->setcap = cap;
    }
    size_t m = w->setcap - 1, i = name_hash(name) & m;
    while (w->set[i]) i = (i + 1) & m;
    if (!(w->set[i] = strdup(name))) return sp_error(SP_ENOMEM, "out of memory");
    w->nset++;
    w->nentries++;
    return SP_OK;
}

/* ---- the target's folder, lock and temp file */
static char *cat3(const char *a, const char *b, const char *c) {
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s) { memcpy(s, a, la); memcpy(s + la, b, lb); memcpy(s + la + lb, c, lc + 1); }
    return s;
}

static sp_status lock_target(sp_ckpt_writer *w) {
    for (int tries = 0; tries < 1000; tries++) {
        w->lockfd = openat(w->dfd, w->lockname, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
        if (w->lockfd < 0)
            return sp_error(SP_EIO, "file '%s': cannot create the lock file '%s' next to it: %s", w->path, w->lockname,
                            strerror(errno));
        struct stat a, b;
        if (fstat(w->lockfd, &a) != 0 || !S_ISREG(a.st_mode))
            return sp_error(SP_EIO, "file '%s': the lock file '%s' next to it is not a regular file", w->path,
                            w->lockname);
        int r;
        while ((r = flock(w->lockfd, LOCK_EX)) != 0 && errno == EINTR) {}
        if (r != 0)
            return sp_error(SP_EIO, "file '%s': cannot lock '%s': %s", w->path, w->lockname, strerror(errno));
        /* the previous holder may have removed the name before we got the lock: retry */
        if (fstatat(w->dfd, w->lockname, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            w->locked = 1;
            return SP_OK;
        }
        close(w->lockfd);
        w->lockfd = -1;
    }
    return sp_error(SP_EIO, "file '%s': the lock file '%s' keeps being replaced", w->path, w->lockname);
}

/* ".<stem>.spore-<pid>-<16 hex>.tmp" with a pid: returns the pid, else 0. */
static long stale_pid(const char *name, const char *prefix, size_t plen) {
    if (strncmp(name, prefix, plen) != 0) return 0;
    const char *p = name + plen;
    long pid = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 10) { pid = pid * 10 + (*p++ - '0'); nd++; }
    if (!nd || *p++ != '-') return 0;
    for (int i = 0; i < 16; i++, p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return strcmp(p, ".tmp") == 0 ? pid : 0;
}

/* Remove temp files of this target left by saves whose process is gone. Runs under the
 * target's lock, so no live save of this target can own one of them. */
static void clean_stale(sp_ckpt_writer *w) {
    char *prefix = cat3(".", w->stem, ".spore-");
    int fd = openat(w->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0) close(fd);
    if (prefix && d) {
        size_t plen = strlen(prefix);
        struct dirent *e;
        while ((e = readdir(d))) {
            long pid = stale_pid(e->d_name, prefix, plen);
            if (pid <= 0 || pid == (long)getpid()) continue;
            if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
            struct stat st;
            if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
                unlinkat(dirfd(d), e->d_name, 0);
        }
    }
    if (d) closedir(d);
    free(prefix);
}

static uint64_t rand64(void) {
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r) return r;
    static _Atomic uint64_t ctr;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r = ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 40) ^ (ctr++ * 0x9E3779B97F4A7C15ull);
    return r;
}

static sp_status create_temp(sp_ckpt_writer *w) {
    size_t n = strlen(w->stem) + 64;
    w->tmpname = malloc(n);
    if (!w->tmpname) return sp_error(SP_ENOMEM, "out of memory");
    for (int tries = 0; tries < 64; tries++) {
        snprintf(w->tmpname, n, ".%s.spore-%ld-%016llx.tmp", w->stem, (long)getpid(), (unsigned long long)rand64());
        w->fd = openat(w->dfd, w->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (w->fd >= 0) { w->tmp_live = 1; break; }
        if (errno != EEXIST)
            return sp_error(SP_EIO, "file '%s': cannot create the temporary file '%s' next to it: %s", w->path,
                            w->tmpname, strerror(errno));
    }
    if (w->fd < 0) return sp_error(SP_EIO, "file '%s': cannot find a free temporary name next to it", w->path);
    const char *slash = strrchr(w->path, '/');
    size_t dl = slash ? (size_t)(slash - w->path) + 1 : 0;
    w->tmp = malloc(dl + strlen(w->tmpname) + 1);
    if (!w->tmp) return sp_error(SP_ENOMEM, "out of memory");
    memcpy(w->tmp, w->path, dl);
    strcpy(w->tmp + dl, w->tmpname);
    return SP_OK;
}

/* Folder, in-process registry, lock, stale temp files, temp file. */
static sp_status setup_target(sp_ckpt_writer *w) {
    const char *path = w->path;
    size_t len = strlen(path);
    if (path[len - 1] == '/')
        return sp_error(SP_EINVAL, "file '%s': the path names a folder, not a file", path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!strcmp(base, ".") || !strcmp(base, ".."))
        return sp_error(SP_EINVAL, "file '%s': the path names a folder, not a file", path);
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    w->base = strdup(base);
    w->stem = strndup(base, 200); /* NAME_MAX room for the decorations */
    w->lockname = w->stem ? cat3(".", w->stem, ".lock") : NULL;
    if (!dir || !w->base || !w->stem || !w->lockname) { free(dir); return sp_error(SP_ENOMEM, "out of memory"); }
    w->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dfd < 0) {
        sp_status st = sp_error(SP_EIO, "file '%s': cannot create it: cannot open its folder '%s': %s", path, dir, strerror(errno));
        free(dir);
        return st;
    }
    free(dir);
    struct stat ds;
    if (fstat(w->dfd, &ds) != 0) return sp_error(SP_EIO, "file '%s': cannot stat its folder: %s", path, strerror(errno));
    w->ddev = ds.st_dev; w->dino = ds.st_ino;
    if (held_register(w) != 0)
        return sp_error(SP_EINVAL,
                        "file '%s': another save of this file is still open in this process (commit or abort it first)",
                        path);
    sp_status st = lock_target(w);
    if (st) return st;
    clean_stale(w);
    return create_temp(w);
}

sp_status sp_ckpt_writer_open(sp_ckpt_writer **out, const char *path, int format, int flags, const void *key,
                              size_t keylen, const char *enc_mode) {
    if (!out) return sp_error(SP_EINVAL, "sp_ckpt_writer_open: out is NULL");
    *out = NULL;
    if (!path || !*path) return sp_error(SP_EINVAL, "save_checkpoint: empty path");
    if (format != SP_CKPT_PROTO && format != SP_CKPT_SAFETENSORS)
        return sp_error(SP_EINVAL, "file '%s': unknown checkpoint format %d", path, format);
    if (key && format == SP_CKPT_SAFETENSORS)
        return sp_error(SP_EINVAL, "file '%s': encryption is only supported for .ckpt", path);
    uint32_t magic = 0;
    if (key) {
        magic = (uint32_t)ck_enc_mode(enc_mode);
        if (!magic)
            return sp_error(SP_EINVAL, "file '%s': unknown enc_mode '%s' (expected AES-GCM, AES-CBC, SM4-CBC)", path,
                            enc_mode);
        if ((magic == CK_MAGIC_SM4 && keylen != 16) || (keylen != 16 && keylen != 24 && keylen != 32))
            return sp_error(SP_EINVAL, "file '%s': enc_key must be %s bytes, got %zu", path,
                            magic == CK_MAGIC_SM4 ? "16" : "16, 24 or 32", keylen);
    }
    sp_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return sp_error(SP_ENOMEM, "out of memory");
    w->fd = -1; w->dfd = -1; w->lockfd = -1;
    w->format = format; w->flags = flags; w->magic = magic;
    w->slice = CK_SLICE_DEFAULT;
    w->path = strdup(path);
    w->buf = malloc(WBUF);
    if (key) { w->key = malloc(keylen); w->keylen = keylen; w->ebuf = malloc(CK_ENC_CHUNK); }
    if (w->buf) sp_mem_account(NULL, (long long)WBUF);
    if (w->ebuf) sp_mem_account(NULL, (long long)CK_ENC_CHUNK);
    if (!w->path || !w->buf || (key && (!w->key || !w->ebuf))) {
        free_writer(w);
        return sp_error(SP_ENOMEM, "out of memory");
    }
    if (key) memcpy(w->key, key, keylen);
    sp_status st = setup_target(w);
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sp_last_error());
        free_writer(w);
        sp_set_error_message(msg);
        return st;
    }
    *out = w;
    return SP_OK;
}

void sp_ckpt_writer_set_slice(sp_ckpt_writer *w, size_t bytes) {
    if (w && bytes > 0) w->slice = bytes;
}

static sp_status write_value(sp_ckpt_writer *w, const char *name, const char *type, int ndim, const int64_t *shape,
                             const void *data, size_t nbytes, int sliceable) {
    int64_t dims[SP_MAX_DIMS];
    int64_t zero = 0;
    Spore__Ms__TensorProto tp = SPORE__MS__TENSOR_PROTO__INIT;
    Spore__Ms__Checkpoint__Value v = SPORE__MS__CHECKPOINT__VALUE__INIT;
    Spore__Ms__Checkpoint ck = SPORE__MS__CHECKPOINT__INIT;
    Spore__Ms__Checkpoint__Value *vp = &v;
    for (int d = 0; d < ndim; d++) dims[d] = shape[d];
    tp.n_dims = ndim ? (size_t)ndim : 1;
    tp.dims = ndim ? dims : &zero; /* scalars as dims [0]: every MindSpore version reads that */
    tp.tensor_type = (char *)type;
    v.tag = (char *)name;
    v.value_case = SPORE__MS__CHECKPOINT__VALUE__VALUE_TENSOR;
    v.tensor = &tp;
    ck.n_value = 1;
    ck.value = &vp;
    pbuf b = {{NULL}, w};
    b.base.append = pbuf_append;
    size_t off = 0;
    do {
        size_t k = sliceable && nbytes - off > w->slice ? w->slice : nbytes - off;
        tp.tensor_content.data = (uint8_t *)data + off;
        tp.tensor_content.len = k;
        spore__ms__checkpoint__pack_to_buffer(&ck, &b.base);
        if (w->err) return w->err;
        off += k;
    } while (off < nbytes);
    return SP_OK;
}

static sp_status add_item(sp_ckpt_writer *w, const char *name, sp_tensor *t, int dtype, int ndim,
                          const int64_t *shape) {
    if (w->nitems == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        st_item *it = realloc(w->items, cap * sizeof *it);
        if (!it) return sp_error(SP_ENOMEM, "out of memory");
        w->items = it; w->cap = cap;
    }
    st_item *it = &w->items[w->nitems];
    memset(it, 0, sizeof *it);
    it->name = strdup(name);
    if (!it->name) return sp_error(SP_ENOMEM, "out of memory");
    it->t = t; it->dtype = dtype; it->ndim = ndim;
    for (int d = 0; d < ndim; d++) it->shape[d] = shape[d];
    w->nitems++;
    return SP_OK;
}

sp_status sp_ckpt_writer_add(sp_ckpt_writer *w, const char *name, const sp_tensor *t) {
    if (!w || !name || !t) return sp_error(SP_EINVAL, "sp_ckpt_writer_add: NULL argument");
    if (w->err) return w->err;
    sp_status st = name_check(w, name);
    if (st) return st;
    int dt = sp_tensor_dtype(t);
    int64_t shape[SP_MAX_DIMS];
    int nd = sp_tensor_shape(t, shape);
    sp_tensor *c = NULL;
    st = sp_tensor_host_contiguous(&c, t); /* device tensors: one explicit copy out */
    if (st) return sp_error(st, "file '%s': tensor '%s': %s", w->path, name, sp_last_error());
    if (w->format == SP_CKPT_SAFETENSORS) {
        st = add_item(w, name, c, dt, nd, shape);
        if (st) sp_tensor_free(c);
        return st ? st : name_add(w, name);
    }
    st = write_value(w, name, ck_ms_name(dt), nd, shape, sp_host_data(c), sp_tensor_nbytes(c), 1);
    sp_tensor_free(c);
    return st ? st : name_add(w, name);
}

sp_status sp_ckpt_writer_add_raw(sp_ckpt_writer *w, const char *name, const char *type, int ndim,
                                 const int64_t *shape, const void *data, size_t nbytes) {
    if (!w || !name || !type || (nbytes && !data) || ndim < 0 || ndim > SP_MAX_DIMS)
        return sp_error(SP_EINVAL, "sp_ckpt_writer_add_raw: bad argument");
    if (w->err) return w->err;
    sp_status st = name_check(w, name);
    if (st) return st;
    int dt = ck_ms_dtype(type);
    if (w->format == SP_CKPT_SAFETENSORS) {
        if (dt < 0)
            return sp_error(SP_EINVAL, "file '%s': tensor '%s': type '%s' cannot be stored in safetensors",
                            w->path, name, type);
        sp_tensor *t = NULL;
        st = sp_tensor_from_data(&t, dt, ndim, shape, data, nbytes);
        if (st) return sp_error(st, "file '%s': tensor '%s': %s", w->path, name, sp_last_error());
        st = add_item(w, name, t, dt, ndim, shape);
        if (st) sp_tensor_free(t);
        return st ? st : name_add(w, name);
    }
    if (dt >= 0) {
        int64_t numel;
        st = sp_shape_numel(ndim, shape, &numel);
        if (st || (size_t)numel * sp_dtype_size(dt) != nbytes)
            return sp_error(SP_EINVAL, "file '%s': tensor '%s': %zu bytes do not match the shape", w->path, name, nbytes);
    }
    st = write_value(w, name, type, ndim, shape, data, nbytes, dt >= 0); /* str: never sliced */
    return st ? st : name_add(w, name);
}

static int cmp_items(const void *a, const void *b) {
    return strcmp((*(st_item *const *)a)->name, (*(st_item *const *)b)->name);
}

static sp_status write_safetensors(sp_ckpt_writer *w) {
    size_t n = w->nitems;
    st_item **sorted = malloc((n ? n : 1) * sizeof *sorted);
    uint64_t *off = malloc((n ? n : 1) * sizeof *off);
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    sp_status st = SP_OK;
    char *hdr = NULL;
    if (!sorted || !off || !root || !meta) { st = sp_error(SP_ENOMEM, "out of memory"); goto done; }
    uint64_t pos = 0;
    for (size_t i = 0; i < n; i++) { off[i] = pos; pos += sp_tensor_nbytes(w->items[i].t); sorted[i] = &w->items[i]; }
    qsort(sorted, n, sizeof *sorted, cmp_items);
    for (size_t i = 1; i < n; i++)
        if (strcmp(sorted[i]->name, sorted[i - 1]->name) == 0) {
            st = sp_error(SP_EINVAL, "file '%s': tensor '%s' added twice", w->path, sorted[i]->name);
            goto done;
        }
    cJSON_AddStringToObject(meta, "format", "ms");
    if (w->flags & SP_CKPT_CRC) {
        uint32_t crc = 0;
        for (size_t i = 0; i < n; i++) {
            st_item *it = sorted[i];
            crc = sp_crc32(crc, it->name, strlen(it->name));
            if (it->ndim == 0 && !sp_dtype_is_float(it->dtype)) {
                int64_t v = sp_load_i64(it->dtype, sp_host_data(it->t));
                crc = ck_crc32_zeros(crc, v > 0 ? (uint64_t)v : 0); /* MindSpore's bytes(0-d int) quirk */
            } else {
                crc = sp_crc32(crc, sp_host_data(it->t), sp_tensor_nbytes(it->t));
            }
        }
        char num[16];
        snprintf(num, sizeof num, "%u", crc);
        cJSON_AddStringToObject(meta, "crc_num", num);
    }
    cJSON_AddItemToObject(root, "__metadata__", meta);
    meta = NULL;
    /* header entries in data-offset order (= insertion order): MindSpore 2.10's reader walks
     * the header in order and rejects a file whose offsets are not increasing ("Fail to parse
     * the input safetensors"); the crc above is over the sorted keys, as MindSpore's */
    for (size_t k = 0; k < n; k++) {
        st_item *it = &w->items[k];
        cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
        if (!e || !sh || !of) { cJSON_Delete(e); cJSON_Delete(sh); cJSON_Delete(of); st = sp_error(SP_ENOMEM, "out of memory"); goto done; }
        cJSON_AddStringToObject(e, "dtype", ck_st_name(it->dtype));
        for (int d = 0; d < it->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)it->shape[d]));
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off[k]));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off[k] + sp_tensor_nbytes(it->t))));
        cJSON_AddItemToObject(e, "data_offsets", of);
        cJSON_AddItemToObject(root, it->name, e);
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) { st = sp_error(SP_ENOMEM, "out of memory"); goto done; }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    st = out_raw(w, len8, 8);
    if (!st) st = out_raw(w, hdr, hl);
    for (size_t i = hl; !st && i < padded; i++) st = out_raw(w, " ", 1);
    for (size_t i = 0; !st && i < n; i++) st = out_raw(w, sp_host_data(w->items[i].t), sp_tensor_nbytes(w->items[i].t));
done:
    free(hdr); free(sorted); free(off);
    cJSON_Delete(root); cJSON_Delete(meta);
    return st;
}

void sp_ckpt_writer_abort(sp_ckpt_writer *w) {
    if (w) free_writer(w); /* removes the temp file, closes every descriptor, releases the lock */
}

sp_status sp_ckpt_writer_commit(sp_ckpt_writer *w) {
    if (!w) return sp_error(SP_EINVAL, "sp_ckpt_writer_commit: NULL writer");
    sp_status st = w->err;
    if (st) sp_set_error_message(w->errmsg);
    if (!st && w->nentries == 0)
        st = sp_error(SP_EINVAL, "file '%s': nothing to save: the checkpoint has no entries (an empty checkpoint cannot be loaded)",
                      w->path);
    if (!st && w->format == SP_CKPT_SAFETENSORS) st = write_safetensors(w);
    if (!st && w->format == SP_CKPT_PROTO && (w->flags & SP_CKPT_CRC)) {
        uint8_t tr[17] = {'c', 'r', 'c', '_', 'n', 'u', 'm', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        uint32_t c = w->crc;
        for (int i = 0; i < 4; i++) tr[16 - i] = (uint8_t)(c >> (8 * i));
        w->flags &= ~SP_CKPT_CRC;
        st = emit(w, tr, sizeof tr);
    }
    if (!st && w->key && w->elen) st = encrypt_chunk(w);
    if (!st) st = flush_buf(w);
    if (!st && fsync(w->fd) != 0) st = sp_error(SP_EIO, "file '%s': fsync failed: %s", w->path, strerror(errno));
    if (!st) {
        int fd = w->fd;
        w->fd = -1;
        if (close(fd) != 0) st = sp_error(SP_EIO, "file '%s': close failed: %s", w->path, strerror(errno));
        else if (renameat(w->dfd, w->tmpname, w->dfd, w->base) != 0)
            st = sp_error(SP_EIO, "file '%s': rename from '%s' failed: %s", w->path, w->tmp, strerror(errno));
        else {
            w->tmp_live = 0;
            fsync(w->dfd); /* make the rename durable (some file systems refuse: not an error) */
        }
    }
    if (st) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", sp_last_error());
        free_writer(w); /* temp file removed, descriptors closed, lock released */
        sp_set_error_message(msg);
        return st;
    }
    free_writer(w);
    return SP_OK;
}
