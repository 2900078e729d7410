/* kernels.h — the per-device kernel table. A public op (engine/core, engine/cpu's sp_*
 * entry points) checks shapes, dtypes and devices once, then calls the table of the
 * operands' device: sp_tensor_dev(t)->k->op(...). engine/cpu fills sp_cpu_kernels (also
 * used by `sim`); engine/cuda fills its own. Kernels take already-checked arguments and
 * reach tensor memory through SP_DATA(). */
#ifndef SPORE_KERNELS_H
#define SPORE_KERNELS_H

#include "spore.h"

typedef struct sp_kernels {
    /* ---- core: copy/convert between two tensors on this device (same numel; shapes equal
     * or both contiguous) */
    sp_status (*copy)(sp_tensor *dst, const sp_tensor *src);
} sp_kernels;

extern const sp_kernels sp_cpu_kernels;

#endif
