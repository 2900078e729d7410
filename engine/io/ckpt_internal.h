/* ckpt_internal.h — engine-private structures shared by the checkpoint readers and
 * writers in engine/io (never part of the FFI). */
#ifndef SP_CKPT_INTERNAL_H
#define SP_CKPT_INTERNAL_H

#include "core/internal.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CK_SLICE_DEFAULT ((size_t)512 * 1024 * 1024)  /* MindSpore's slice size */
#define CK_ENC_CHUNK ((size_t)64 * 1024 * 1024)       /* plaintext per encrypted block */
#define CK_MAGIC_GCM 0x7F3A5ED8u
#define CK_MAGIC_CBC 0x7F3A5ED9u
#define CK_MAGIC_SM4 0x7F3A5EDAu

/* A refcounted buffer holding a whole file's bytes: an engine heap copy read from the
 * file (never a mapping of it: a file changed or truncated later cannot reach a loaded
 * tensor), or borrowed caller memory. */
typedef struct ck_map {
    void *addr;
    size_t len;
    int heap;          /* 1: addr is malloc'd (owned), 2: borrowed caller memory,
                        * 3: addr is a ck_block_alloc block (owned, counted by the block) */
    atomic_int refs;
} ck_map;
/* Owned heap copies count their bytes in sp_mem_stats (cpu) while alive: safetensors
 * tensors are views on them, so the file's bytes are counted once. */
ck_map *ck_map_heap(void *data, size_t len); /* takes ownership of data */
ck_map *ck_map_borrow(const void *data, size_t len); /* caller memory: not owned, not counted */
ck_map *ck_map_block(void *block, size_t len);       /* takes ownership of a ck_block_alloc block */
void ck_map_retain(ck_map *m);
void ck_map_release(void *m); /* sp_release_fn */

typedef struct ck_entry {
    char *name;
    char *type;            /* stored type string */
    int dtype;             /* -1: no tensor (str, maptensor, unknown) */
    int ndim;
    int64_t shape[SP_MAX_DIMS];
    size_t nbytes;
    void *data;            /* content (in t's storage, in raw, or in the file buffer) */
    void *raw;             /* content not owned by a tensor (str / unknown): ck_block_free */
    sp_tensor *t;          /* .ckpt entries with a dtype */
    int aligned;           /* safetensors: data suitably aligned for a zero-copy view */
} ck_entry;

struct sp_ckpt {
    char *path;
    int format;
    ck_entry *e;
    int64_t n, cap;
    int crc_state;         /* 0 none, 1 present, 2 present and verified */
    uint32_t crc;
    char enc[16];
    char *meta;            /* safetensors __metadata__ JSON */
    ck_map *map;           /* safetensors: the file's bytes, shared by its tensors */
    long long acct;        /* bookkeeping bytes (this struct, entries, names) counted while open */
};

ck_entry *ck_push(sp_ckpt *c);
/* Every entry name once (sorted, so linear-log): else an error naming the file, the name,
 * both entry numbers and `hint` (appended to them, e.g. ", after flattening nested dicts"). */
sp_status ck_check_unique(sp_ckpt *c, const char *hint);
/* A block from the .ckpt reader's allocator (counted; >= 1 MiB: 2 MiB-aligned huge
 * pages, reused through the block cache), and its release (sp_release_fn).
 * _uncached returns a big block to the system at once (a whole-file buffer: its
 * length is unlikely to be asked for again, and it should not hold a file's worth of
 * memory in the cache after its last tensor dies). */
void *ck_block_alloc(size_t size);
void ck_block_free(void *p);
void ck_block_free_uncached(void *p);

/* Reading users' files (ckpt.c, ckpt_read.c; opened by sp_io_open_regular, io/file.h).
 * ck_pread_full reads exactly len bytes at off; a file that ends early (truncated while
 * being read) is an SP_EIO error naming the file, total being the size expected. */
sp_status ck_pread_full(const char *path, int fd, void *dst, size_t len, uint64_t off, uint64_t total);
/* The same, read by libgomp's threads in 2 MiB pieces (one thread under ck_read_hook). */
sp_status ck_pread_all(const char *path, int fd, void *dst, size_t len, uint64_t off, uint64_t total);
/* Test hook (engine-private, for spec/engine): called before every read of a user's
 * file with the offset about to be read. NULL in normal use. */
extern void (*ck_read_hook)(int fd, uint64_t offset);
/* Test hook (engine-private): called once on the caller's thread before the queued reads
 * start: a plain .ckpt file's parse and contents, or ck_pread_all (ck_read_hook set turns
 * the queue off). */
extern void (*ck_queue_hook)(int fd);
/* Tests: zero the pages of every cached block's data (MADV_DONTNEED), as the kernel's
 * reclaim of lazily freed pages would; returns the bytes dropped. */
size_t ck_cache_drop_pages(void);

/* .ckpt protobuf stream (after decryption and trailer removal) from memory, or the
 * first n bytes of fd read record by record. _fd: when want_crc, *crc is the trailer's
 * value on entry (a parse error in a file whose CRC mismatches reports the mismatch)
 * and the CRC-32 of the n bytes on return. */
sp_status ck_parse_proto(sp_ckpt *c, const uint8_t *buf, size_t n);
sp_status ck_parse_proto_fd(sp_ckpt *c, int fd, size_t n, int want_crc, uint32_t *crc);
/* safetensors over c->map. */
sp_status ck_parse_safetensors(sp_ckpt *c, int flags);
int ck_is_safetensors(const uint8_t *buf, size_t n);
/* PyTorch .pth (zip, STORED entries) over buf; tensors are copied out (pth.c). */
sp_status ck_parse_pth(sp_ckpt *c, const uint8_t *buf, size_t n);
int ck_is_pth(const uint8_t *buf, size_t n);

/* Encryption (crypt.c). mode: "AES-GCM" | "AES-CBC" | "SM4-CBC". */
int ck_enc_mode(const char *mode);  /* magic for mode, 0 if unknown */
int ck_is_encrypted(const uint8_t *buf, size_t n, uint32_t *magic);
sp_status ck_decrypt(const char *file, const uint8_t *in, size_t n, const void *key, size_t keylen,
                     const char *mode, uint8_t **out, size_t *outn);
/* Encrypt one chunk into a complete block appended to *out (malloc'd, grown). */
sp_status ck_encrypt_block(const char *file, uint32_t magic, const void *key, size_t keylen,
                           const uint8_t *in, size_t n, uint8_t **out, size_t *outn);

/* Strict type-name tables. */
int ck_ms_dtype(const char *type);             /* MindSpore name -> dtype or -1 */
const char *ck_ms_name(int dtype);
int ck_st_dtype(const char *type);             /* safetensors name -> dtype or -1 */
const char *ck_st_name(int dtype);

/* CRC of n zero bytes continued from crc (MindSpore's safetensors 0-d int quirk). */
uint32_t ck_crc32_zeros(uint32_t crc, uint64_t n);

#endif
