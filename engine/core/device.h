/* device.h — engine-private device model: every storage belongs to one sp_device, which
 * owns its allocator, its explicit copies to and from host memory, its scratch workspace,
 * its byte counters and its kernel table (engine/core/kernels.h). Public ops check shapes
 * and dtypes once, then call dev->k->op(...). See docs/ARCHITECTURE.md. */
#ifndef SPORE_DEVICE_H
#define SPORE_DEVICE_H

#include "spore.h"

#include <stdatomic.h>

struct sp_kernels;

typedef struct sp_device sp_device;
struct sp_device {
    int code;           /* public code: SP_DEVICE_CPU, SP_DEVICE_SIM, SP_DEVICE_CUDA + index */
    int type;           /* SP_DEVICE_CPU / _SIM / _CUDA (code with the index masked off) */
    int index;
    char name[16];      /* "cpu", "sim", "cuda:0" */
    int host_visible;   /* 1: host code may address this memory (sp_tensor_data works) */
    /* memory: nbytes may be 0 (a unique non-NULL block is returned); zero != 0 zero-fills */
    void *(*alloc)(sp_device *d, size_t nbytes, int zero);
    void (*free)(sp_device *d, void *p, size_t nbytes);
    /* 1 when p points into this device's memory */
    int (*owns)(const sp_device *d, const void *p);
    /* explicit copies of n bytes: host -> device, device -> host, device -> device */
    sp_status (*from_host)(sp_device *d, void *dst, const void *src, size_t n);
    sp_status (*to_host)(sp_device *d, void *dst, const void *src, size_t n);
    sp_status (*copy)(sp_device *d, void *dst, const void *src, size_t n);
    const struct sp_kernels *k;
    atomic_llong live, peak, allocs;
};

/* The device for a public code, or NULL with the error set (unknown or not built). */
sp_device *sp_device_get(int code);
sp_device *sp_device_cpu(void);
/* The device that owns host pointer p (sim), or NULL: used to refuse device pointers
 * passed in as host memory. */
sp_device *sp_device_owning(const void *p);

/* The device of an adopted storage whose lender revoked it (sp_tensor_revoke): no memory,
 * no kernels, every copy an error saying the buffer is gone. */
extern sp_device sp_revoked_device;
/* The error of an op whose device has no such kernel ("not implemented on device X"; for a
 * revoked storage, that the lent buffer is gone). */
sp_status sp_kernel_missing(const char *kern, const sp_device *d);

/* Byte accounting: every engine allocation, on any device, and host blocks that are not
 * tensor storage (the checkpoint reader's blocks and cache, workspaces) report here. */
void sp_mem_account(sp_device *d, long long delta);

/* Per-device, per-thread scratch memory: a grow-only buffer reused across calls (kernels
 * must not keep it across calls; nested users take distinct slots 0..SP_WS_SLOTS-1). */
enum { SP_WS_SLOTS = 4 };
void *sp_workspace(sp_device *d, int slot, size_t nbytes);

#endif
