/* device.c — device queries; the CUDA implementation lives in engine/cuda. */
#include "spore.h"

#ifdef SP_HAVE_CUDA
int sp_cuda_device_count_impl(void);
int sp_cuda_device_count(void) { return sp_cuda_device_count_impl(); }
#else
int sp_cuda_device_count(void) { return 0; }
#endif
