"""sgemm_peak.py — the machine's 2-thread float32 GEMM peak, GFLOP/s: the best of 5
square 2048 products, through NumPy (OpenBLAS, OPENBLAS_NUM_THREADS=2 set by the caller)
and, when it imports, torch with 2 threads. Prints one number (the larger)."""
import time

import numpy as np

N = 2048
best = 0.0
a, b = np.random.rand(N, N).astype(np.float32), np.random.rand(N, N).astype(np.float32)
a @ b
for _ in range(5):
    t0 = time.perf_counter()
    a @ b
    best = max(best, 2 * N ** 3 / (time.perf_counter() - t0) / 1e9)
try:
    import torch
    torch.set_num_threads(2)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ta @ tb
    for _ in range(5):
        t0 = time.perf_counter()
        ta @ tb
        best = max(best, 2 * N ** 3 / (time.perf_counter() - t0) / 1e9)
except ImportError:
    pass
print("%.1f" % best)
