/* kernels.c — the CPU device's kernel table (also the `sim` device's). */
#include "core/kernels.h"

sp_status sp_cpu_copy(sp_tensor *dst, const sp_tensor *src);

const sp_kernels sp_cpu_kernels = {
    .copy = sp_cpu_copy,
};
