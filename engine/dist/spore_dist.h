/* spore_dist.h — the C API of build/libspore_dist.so: data-parallel collectives over Open MPI
 * (and NCCL under `make CUDA=1`). A library of its own: libspore.so never links MPI; the Lua
 * side (bindings/ffi/dist.lua) loads this one only when spore.dist is used.
 *
 * Every call returns 0 on success, non-zero on failure with a message in sp_dist_last_error().
 * No call blocks without a deadline: collectives are non-blocking (MPI_I*) and are completed
 * by polling MPI_Test until the timeout (sp_dist_set_timeout, seconds) runs out, so a peer
 * rank that died or hangs is reported instead of waited for. */
#ifndef SPORE_DIST_H
#define SPORE_DIST_H
#include <stddef.h>

#pragma GCC visibility push(default)
/* @ffi-begin (bindings/ffi/dist_cdef.lua is generated from here by scripts/gen_cdef.lua) */
/* MPI_Init_thread (FUNNELED) unless MPI is already up; rank and size of MPI_COMM_WORLD. */
int sp_dist_init(int *rank, int *size);
int sp_dist_initialized(void);
/* The deadline of every wait, in seconds (default 20). */
void sp_dist_set_timeout(double seconds);
double sp_dist_timeout(void);
const char *sp_dist_last_error(void);
/* Broadcast bytes from root (MPI_Ibcast + polling). */
int sp_dist_bcast(void *buf, size_t bytes, int root, const char *what);
/* Start an in-place float32 sum all-reduce (MPI_Iallreduce); *handle names it for wait. */
int sp_dist_iallreduce_f32(float *buf, size_t n, int *handle);
/* Drive MPI's progress engine on the outstanding requests (no blocking). */
int sp_dist_progress(void);
/* Complete request handle by its deadline; *waited: seconds spent waiting here. */
int sp_dist_wait(int handle, const char *what, double *waited);
/* In-place double all-reduce: op 0 = sum, 1 = max. */
int sp_dist_allreduce_f64(double *buf, size_t n, int op, const char *what);
/* Heartbeat of a step: post a small message to every other rank and receives from each. */
int sp_dist_heartbeat_post(long step);
/* Complete the heartbeats posted for step; on timeout the message names the silent ranks. */
int sp_dist_heartbeat_wait(long step);
int sp_dist_barrier(const char *what);
/* MPI_Abort(MPI_COMM_WORLD, code): ends every rank (used after a reported failure). */
void sp_dist_abort(int code);
int sp_dist_finalize(void);
/* Seconds since an arbitrary start (MPI_Wtime). */
double sp_dist_wtime(void);

/* NCCL (built only with `make CUDA=1`; 0 otherwise). */
int sp_dist_have_nccl(void);
/* 1 when libnccl/libcudart load and a GPU is visible; else 0 and *why says what is missing. */
int sp_dist_nccl_usable(const char **why);
/* NCCL communicator over MPI_COMM_WORLD on GPU (device mod GPUs): rank 0 makes the ncclUniqueId,
 * MPI broadcasts it. */
int sp_dist_nccl_init(int device);
/* In-place float32 sum all-reduce of n device floats on the communicator's stream, then sync. */
int sp_dist_nccl_allreduce_f32(void *dev_buf, size_t n);
/* A self-check: allreduce of n floats (rank r contributes r+1) in device memory; *ok = 1 when right. */
int sp_dist_nccl_selftest(size_t n, int *ok);
int sp_dist_nccl_finalize(void);
/* 1 once sp_dist_nccl_init has made the communicator. */
int sp_dist_nccl_ready(void);
/* The NCCL calls below take spore tensors (const sp_tensor *, opaque here) and find their
 * device address and stream inside C, through libspore.so's sp_tensor_device_region
 * (engine/include/spore_engine_ext.h): path is the libspore.so already loaded by the
 * process (it is opened with RTLD_NOLOAD, never loaded a second time). */
int sp_dist_nccl_bind_engine(const char *path);
/* Start an in-place float32 sum all-reduce of contiguous cuda tensor t (n elements) on the
 * communicator's stream, after the work already queued on t's device stream; *handle names
 * it for sp_dist_nccl_wait. */
int sp_dist_nccl_iallreduce(const void *t, size_t n, int *handle);
/* Complete it by the deadline (polling its event; liveness probes are answered meanwhile);
 * later work on the device stream is ordered after it. On timeout the communicator is
 * aborted and the message names the silent ranks. */
int sp_dist_nccl_wait(int handle, const char *what, double *waited);
/* Broadcast bytes of contiguous cuda tensor t from root (ncclBroadcast), by the deadline. */
int sp_dist_nccl_bcast(const void *t, size_t bytes, int root, const char *what);
/* @ffi-end */
#pragma GCC visibility pop
#endif
