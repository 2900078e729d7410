// device.cu — CUDA runtime glue (built with `make CUDA=1`).
#include <cuda_runtime.h>

extern "C" int sp_cuda_device_count_impl(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}
