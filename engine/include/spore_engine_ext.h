/* spore_engine_ext.h — for engine libraries written in C that sit beside libspore.so (today
 * libspore_dist.so's NCCL path) and must reach device memory themselves. Exported by
 * libspore.so but deliberately not in spore.h: bindings/ffi/cdef.lua is generated from
 * spore.h, so no Lua code can see these (no raw pointers above bindings/, and none in Lua at
 * all for device memory). */
#ifndef SPORE_ENGINE_EXT_H
#define SPORE_ENGINE_EXT_H

#include "spore.h"

#pragma GCC visibility push(default)
/* The device address of t's first element (offset applied; t must be contiguous), the
 * public code of its device (SP_DEVICE_CUDA + index...) and the stream its kernels run on
 * (a cudaStream_t; NULL for host-addressable devices, whose ops are synchronous). A host
 * tensor (cpu, sim) gives its host address. SP_EINVAL for a non-contiguous tensor. */
sp_status sp_tensor_device_region(const sp_tensor *t, void **addr, int *device, void **stream);
#pragma GCC visibility pop

#endif
