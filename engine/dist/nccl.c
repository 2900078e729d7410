/* nccl.c — the NCCL half of libspore_dist.so (built only with `make CUDA=1`). MPI exchanges
 * the ncclUniqueId (rank 0 makes it) and keeps control; NCCL moves the device buffers.
 * libnccl and libcudart are opened with dlopen at first use, so the library still loads on a
 * machine without them or without a GPU, and sp_dist_nccl_usable() says what is missing. */
#define SP_DIST_NCCL 1
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <nccl.h>
#include "spore_dist.h"

/* dist.c's error slot (hidden: not exported) */
int sp_dist_fail_msg(const char *msg);
static char n_err[512];
static const char *nerr(const char *fmt, const char *a) {
  snprintf(n_err, sizeof n_err, fmt, a);
  return n_err;
}

typedef int (*cuda_int_fn)(int *);
static struct {
  int tried, ok;
  const char *why;
  void *nccl, *cudart;
  ncclResult_t (*GetUniqueId)(ncclUniqueId *);
  ncclResult_t (*CommInitRank)(ncclComm_t *, int, ncclUniqueId, int);
  ncclResult_t (*AllReduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, void *);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  const char *(*GetErrorString)(ncclResult_t);
  int (*GetDeviceCount)(int *);
  int (*SetDevice)(int);
  int (*Malloc)(void **, size_t);
  int (*Free)(void *);
  int (*Memcpy)(void *, const void *, size_t, int);
  int (*StreamCreate)(void **);
  int (*StreamSynchronize)(void *);
} L;
static ncclComm_t g_comm;
static void *g_stream;
static int g_have_comm;

int sp_dist_have_nccl(void) { return 1; }

#define SYM(h, dst, name)                                                   \
  do {                                                                      \
    *(void **)(&dst) = dlsym(h, name);                                      \
    if (!dst) { L.why = nerr("NCCL: symbol %s not found", name); return; } \
  } while (0)

static void load(void) {
  if (L.tried) return;
  L.tried = 1;
  L.nccl = dlopen("libnccl.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (!L.nccl) L.nccl = dlopen("libnccl.so", RTLD_NOW | RTLD_GLOBAL);
  if (!L.nccl) { L.why = "NCCL: libnccl.so.2 cannot be loaded (install NCCL)"; return; }
  L.cudart = dlopen("libcudart.so", RTLD_NOW | RTLD_GLOBAL);
  if (!L.cudart) L.cudart = dlopen("libcudart.so.13", RTLD_NOW | RTLD_GLOBAL);
  if (!L.cudart) L.cudart = dlopen("libcudart.so.12", RTLD_NOW | RTLD_GLOBAL);
  if (!L.cudart) { L.why = "NCCL: libcudart.so cannot be loaded (install the CUDA runtime)"; return; }
  SYM(L.nccl, L.GetUniqueId, "ncclGetUniqueId");
  SYM(L.nccl, L.CommInitRank, "ncclCommInitRank");
  SYM(L.nccl, L.AllReduce, "ncclAllReduce");
  SYM(L.nccl, L.CommDestroy, "ncclCommDestroy");
  SYM(L.nccl, L.GetErrorString, "ncclGetErrorString");
  SYM(L.cudart, L.GetDeviceCount, "cudaGetDeviceCount");
  SYM(L.cudart, L.SetDevice, "cudaSetDevice");
  SYM(L.cudart, L.Malloc, "cudaMalloc");
  SYM(L.cudart, L.Free, "cudaFree");
  SYM(L.cudart, L.Memcpy, "cudaMemcpy");
  SYM(L.cudart, L.StreamCreate, "cudaStreamCreate");
  SYM(L.cudart, L.StreamSynchronize, "cudaStreamSynchronize");
  int n = 0;
  if (L.GetDeviceCount(&n) != 0 || n < 1) { L.why = "NCCL: no GPU is visible (cudaGetDeviceCount found none)"; return; }
  L.ok = 1;
}

int sp_dist_nccl_usable(const char **why) {
  load();
  if (why) *why = L.ok ? "" : L.why;
  return L.ok;
}

/* report through dist.c's error (sp_dist_bcast sets it on MPI failures) */
static int nfail(const char *what, ncclResult_t r) {
  snprintf(n_err, sizeof n_err, "NCCL: %s: %s", what, L.GetErrorString ? L.GetErrorString(r) : "error");
  return sp_dist_fail_msg(n_err);
}

int sp_dist_nccl_init(int device) {
  load();
  if (!L.ok) return sp_dist_fail_msg(L.why);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int ngpu = 1;
  if (L.GetDeviceCount(&ngpu) != 0 || ngpu < 1) ngpu = 1;
  device = (device < 0 ? 0 : device) % ngpu; /* the local rank, modulo the GPUs */
  if (L.SetDevice(device) != 0) return sp_dist_fail_msg("NCCL: cudaSetDevice failed");
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (rank == 0) {
    ncclResult_t r = L.GetUniqueId(&id);
    if (r != ncclSuccess) return nfail("ncclGetUniqueId", r);
  }
  if (sp_dist_bcast(&id, sizeof id, 0, "NCCL id broadcast")) return 1;
  if (L.StreamCreate(&g_stream) != 0) return sp_dist_fail_msg("NCCL: cudaStreamCreate failed");
  ncclResult_t r = L.CommInitRank(&g_comm, size, id, rank);
  if (r != ncclSuccess) return nfail("ncclCommInitRank", r);
  g_have_comm = 1;
  return 0;
}

int sp_dist_nccl_allreduce_f32(void *buf, size_t n) {
  if (!g_have_comm) return sp_dist_fail_msg("NCCL: no communicator (call sp_dist_nccl_init)");
  ncclResult_t r = L.AllReduce(buf, buf, n, ncclFloat32, ncclSum, g_comm, g_stream);
  if (r != ncclSuccess) return nfail("ncclAllReduce", r);
  if (L.StreamSynchronize(g_stream) != 0) return sp_dist_fail_msg("NCCL: stream synchronize failed");
  return 0;
}

int sp_dist_nccl_selftest(size_t n, int *ok) {
  *ok = 0;
  if (!g_have_comm) return 1;
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  float *h = malloc(n * sizeof *h);
  void *d = NULL;
  if (!h) return 1;
  for (size_t i = 0; i < n; i++) h[i] = (float)(rank + 1) * (float)(i % 7);
  if (L.Malloc(&d, n * sizeof *h) != 0) { free(h); return 1; }
  L.Memcpy(d, h, n * sizeof *h, 1 /* host to device */);
  int rc = sp_dist_nccl_allreduce_f32(d, n);
  L.Memcpy(h, d, n * sizeof *h, 2 /* device to host */);
  L.Free(d);
  float want_sum = (float)size * (float)(size + 1) / 2.0f;
  int good = rc == 0;
  for (size_t i = 0; good && i < n; i++) good = h[i] == want_sum * (float)(i % 7);
  free(h);
  *ok = good;
  return rc;
}

int sp_dist_nccl_finalize(void) {
  if (g_have_comm) { L.CommDestroy(g_comm); g_have_comm = 0; }
  return 0;
}
