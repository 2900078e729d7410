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
#include <time.h>
#include <nccl.h>
#include "spore_dist.h"
#include "spore_engine_ext.h"

/* dist.c's error slot, liveness probes and timeout message (hidden: not exported) */
int sp_dist_fail_msg(const char *msg);
void sp_dist_serve(void);
int sp_dist_timeout_fail(const char *what);
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
  ncclResult_t (*CommAbort)(ncclComm_t);
  ncclResult_t (*Broadcast)(const void *, void *, size_t, ncclDataType_t, int, ncclComm_t, void *);
  const char *(*GetErrorString)(ncclResult_t);
  int (*GetDeviceCount)(int *);
  int (*SetDevice)(int);
  int (*Malloc)(void **, size_t);
  int (*Free)(void *);
  int (*Memcpy)(void *, const void *, size_t, int);
  int (*StreamCreate)(void **);
  int (*StreamSynchronize)(void *);
  int (*StreamCreateWithFlags)(void **, unsigned);
  int (*EventCreateWithFlags)(void **, unsigned);
  int (*EventRecord)(void *, void *);
  int (*EventQuery)(void *);
  int (*StreamWaitEvent)(void *, void *, unsigned);
  int (*EventDestroy)(void *);
} L;
static ncclComm_t g_comm;
static void *g_stream;
static int g_have_comm, g_dev;

/* libspore.so's device-region accessor (sp_dist_nccl_bind_engine) */
static struct {
  sp_status (*region)(const sp_tensor *, void **, int *, void **);
  const char *(*last_error)(void);
} E;

/* outstanding NCCL all-reduces: an event on the engine's stream before, one on ours after */
#define NMAX 256
static struct {
  int used;
  void *ready, *done, *engine_stream;
} g_op[NMAX];

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
  SYM(L.nccl, L.CommAbort, "ncclCommAbort");
  SYM(L.nccl, L.Broadcast, "ncclBroadcast");
  SYM(L.cudart, L.GetDeviceCount, "cudaGetDeviceCount");
  SYM(L.cudart, L.SetDevice, "cudaSetDevice");
  SYM(L.cudart, L.Malloc, "cudaMalloc");
  SYM(L.cudart, L.Free, "cudaFree");
  SYM(L.cudart, L.Memcpy, "cudaMemcpy");
  SYM(L.cudart, L.StreamCreate, "cudaStreamCreate");
  SYM(L.cudart, L.StreamSynchronize, "cudaStreamSynchronize");
  SYM(L.cudart, L.StreamCreateWithFlags, "cudaStreamCreateWithFlags");
  SYM(L.cudart, L.EventCreateWithFlags, "cudaEventCreateWithFlags");
  SYM(L.cudart, L.EventRecord, "cudaEventRecord");
  SYM(L.cudart, L.EventQuery, "cudaEventQuery");
  SYM(L.cudart, L.StreamWaitEvent, "cudaStreamWaitEvent");
  SYM(L.cudart, L.EventDestroy, "cudaEventDestroy");
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
  /* non-blocking, as the engine's own stream: ordering between the two is by events */
  if (L.StreamCreateWithFlags(&g_stream, 1 /* cudaStreamNonBlocking */) != 0)
    return sp_dist_fail_msg("NCCL: cudaStreamCreateWithFlags failed");
  g_dev = device;
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
  for (int i = 0; i < NMAX; i++) {
    if (g_op[i].ready) { L.EventDestroy(g_op[i].ready); L.EventDestroy(g_op[i].done); }
    g_op[i].ready = g_op[i].done = NULL;
    g_op[i].used = 0;
  }
  return 0;
}

int sp_dist_nccl_ready(void) { return g_have_comm; }

int sp_dist_nccl_bind_engine(const char *path) {
  void *h = path ? dlopen(path, RTLD_NOW | RTLD_NOLOAD) : NULL;
  void *r = dlsym(h ? h : RTLD_DEFAULT, "sp_tensor_device_region");
  void *e = dlsym(h ? h : RTLD_DEFAULT, "sp_last_error");
  if (!r || !e)
    return sp_dist_fail_msg(nerr("NCCL: %s does not export sp_tensor_device_region (a libspore.so older than "
                                 "this libspore_dist.so)", path ? path : "the loaded libspore.so"));
  *(void **)(&E.region) = r;
  *(void **)(&E.last_error) = e;
  return 0;
}

/* the device address and engine stream of tensor t, which must be on the communicator's GPU */
static int region_of(const void *t, void **addr, void **estream) {
  if (!g_have_comm) return sp_dist_fail_msg("NCCL: no communicator (spore.dist chose NCCL before sp_dist_nccl_init?)");
  if (!E.region) return sp_dist_fail_msg("NCCL: the engine is not bound (sp_dist_nccl_bind_engine)");
  int dev = -1;
  if (E.region((const sp_tensor *)t, addr, &dev, estream) != SP_OK) {
    snprintf(n_err, sizeof n_err, "NCCL: %s", E.last_error());
    return sp_dist_fail_msg(n_err);
  }
  if (dev != SP_DEVICE_CUDA + g_dev || !*estream) {
    snprintf(n_err, sizeof n_err, "NCCL: the tensor is on device code %d, the communicator on cuda:%d (one GPU per "
             "process: put the network on spore.dist.local_device())", dev, g_dev);
    return sp_dist_fail_msg(n_err);
  }
  if (L.SetDevice(g_dev) != 0) return sp_dist_fail_msg("NCCL: cudaSetDevice failed");
  return 0;
}

static int new_op(void) {
  for (int i = 0; i < NMAX; i++) {
    if (g_op[i].used) continue;
    if (!g_op[i].ready) {
      /* cudaEventDisableTiming = 2 */
      if (L.EventCreateWithFlags(&g_op[i].ready, 2) != 0 || L.EventCreateWithFlags(&g_op[i].done, 2) != 0) {
        sp_dist_fail_msg("NCCL: cudaEventCreateWithFlags failed");
        return -1;
      }
    }
    g_op[i].used = 1;
    return i;
  }
  sp_dist_fail_msg("NCCL: more than 256 operations outstanding");
  return -1;
}

/* queue after the engine's work on estream; returns the op, or -1 with the error set */
static int begin_op(void *estream) {
  int h = new_op();
  if (h < 0) return -1;
  g_op[h].engine_stream = estream;
  if (L.EventRecord(g_op[h].ready, estream) != 0 || L.StreamWaitEvent(g_stream, g_op[h].ready, 0) != 0) {
    g_op[h].used = 0;
    sp_dist_fail_msg("NCCL: cannot order the communication after the device's kernels (cudaEventRecord)");
    return -1;
  }
  return h;
}

static int end_op(int h, ncclResult_t r, const char *what) {
  if (r != ncclSuccess) { g_op[h].used = 0; return nfail(what, r); }
  if (L.EventRecord(g_op[h].done, g_stream) != 0) {
    g_op[h].used = 0;
    return sp_dist_fail_msg("NCCL: cudaEventRecord failed");
  }
  return 0;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* poll op h's done event by the deadline; then the engine's stream waits for it */
static int finish_op(int h, const char *what, double *waited) {
  double t0 = now(), deadline = t0 + sp_dist_timeout();
  struct timespec ts = { 0, 50000 };
  for (;;) {
    int q = L.EventQuery(g_op[h].done);
    if (q == 0) break;
    if (q != 600 /* cudaErrorNotReady */) {
      g_op[h].used = 0;
      snprintf(n_err, sizeof n_err, "NCCL: %s: CUDA error %d while waiting", what, q);
      return sp_dist_fail_msg(n_err);
    }
    if (now() > deadline) {
      /* a peer never joined: abort the communicator (its kernels would spin for ever) */
      L.CommAbort(g_comm);
      g_have_comm = 0;
      g_op[h].used = 0;
      if (waited) *waited = now() - t0;
      return sp_dist_timeout_fail(what);
    }
    sp_dist_serve();
    nanosleep(&ts, NULL);
  }
  if (waited) *waited = now() - t0;
  int rc = L.StreamWaitEvent(g_op[h].engine_stream, g_op[h].done, 0);
  g_op[h].used = 0;
  if (rc != 0) return sp_dist_fail_msg("NCCL: cudaStreamWaitEvent failed");
  return 0;
}

int sp_dist_nccl_iallreduce(const void *t, size_t n, int *handle) {
  void *addr = NULL, *es = NULL;
  if (region_of(t, &addr, &es)) return 1;
  int h = begin_op(es);
  if (h < 0) return 1;
  if (end_op(h, L.AllReduce(addr, addr, n, ncclFloat32, ncclSum, g_comm, g_stream), "ncclAllReduce")) return 1;
  *handle = h;
  return 0;
}

int sp_dist_nccl_wait(int h, const char *what, double *waited) {
  if (h < 0 || h >= NMAX || !g_op[h].used) {
    snprintf(n_err, sizeof n_err, "NCCL: %s: no such all-reduce handle %d", what, h);
    return sp_dist_fail_msg(n_err);
  }
  return finish_op(h, what, waited);
}

int sp_dist_nccl_bcast(const void *t, size_t bytes, int root, const char *what) {
  void *addr = NULL, *es = NULL;
  if (region_of(t, &addr, &es)) return 1;
  int h = begin_op(es);
  if (h < 0) return 1;
  if (end_op(h, L.Broadcast(addr, addr, bytes, ncclUint8, root, g_comm, g_stream), "ncclBroadcast")) return 1;
  return finish_op(h, what, NULL);
}
