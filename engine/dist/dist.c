/* dist.c — spore's data-parallel collectives over Open MPI (see spore_dist.h).
 * Policy (what to reduce, when, bucket sizes) lives in lua/spore/dist; this file only moves
 * bytes and keeps deadlines: every collective is non-blocking and completed by polling
 * MPI_Test until the timeout, so no rank ever waits forever for a dead or hung peer. */
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include "spore_dist.h"

static char g_err[1024];
static double g_timeout = 20.0;
static int g_rank = -1, g_size = 0, g_inited_here = 0;

#define MAXREQ 4096
static MPI_Request g_req[MAXREQ];
static int g_used[MAXREQ];

/* heartbeats: one send and one receive per peer per step */
static MPI_Request *g_hb_req;
static long *g_hb_in, g_hb_out;
static long g_hb_step = -1;

static int fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  return 1;
}
static int mpi_fail(int rc, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, s, &len);
  return fail("rank %d of %d: %s: MPI error: %s", g_rank, g_size, what, s);
}

const char *sp_dist_last_error(void) { return g_err; }
/* for nccl.c (hidden) */
int sp_dist_fail_msg(const char *msg) { return fail("%s", msg); }
void sp_dist_set_timeout(double s) { g_timeout = s > 0 ? s : 20.0; }
double sp_dist_timeout(void) { return g_timeout; }
double sp_dist_wtime(void) { return MPI_Wtime(); }

int sp_dist_initialized(void) {
  int f = 0;
  MPI_Initialized(&f);
  return f;
}

int sp_dist_init(int *rank, int *size) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Init_thread");
    g_inited_here = 1;
  }
  /* errors come back as codes, never as an abort inside MPI */
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_size);
  if (!g_hb_req) {
    g_hb_req = calloc(2 * (size_t)g_size, sizeof *g_hb_req);
    g_hb_in = calloc((size_t)g_size, sizeof *g_hb_in);
    if (!g_hb_req || !g_hb_in) return fail("out of memory for %d ranks' heartbeats", g_size);
    for (int i = 0; i < 2 * g_size; i++) g_hb_req[i] = MPI_REQUEST_NULL;
  }
  *rank = g_rank;
  *size = g_size;
  return 0;
}

/* between polls: yield the CPU for the first 5 ms (latency: most waits end here), then sleep
 * 50 us, then 1 ms once a wait has lasted a second (a slow or dead peer) */
static void backoff(double since) {
  double el = MPI_Wtime() - since;
  if (el < 0.005) { sched_yield(); return; }
  struct timespec ts = { 0, el < 1.0 ? 50000 : 1000000 };
  nanosleep(&ts, NULL);
}

/* liveness probes: a rank whose collective timed out pings every peer; a peer answers from
 * any of spore.dist's polling loops. The peers that do not answer are named as dead or hung. */
#define TAG_PING 7002
#define TAG_PONG 7003
static void serve_pings(void) {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, MPI_COMM_WORLD, &flag, &st) != MPI_SUCCESS || !flag) return;
    long v = 0;
    MPI_Recv(&v, 1, MPI_LONG, st.MPI_SOURCE, TAG_PING, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    MPI_Request r;
    if (MPI_Isend(&v, 1, MPI_LONG, st.MPI_SOURCE, TAG_PONG, MPI_COMM_WORLD, &r) == MPI_SUCCESS) MPI_Request_free(&r);
  }
}

/* ", silent: rank 1 (no answer to a liveness probe within 2 s)" into out; "" when all answer */
static void name_silent(char *out, size_t cap) {
  out[0] = 0;
  if (g_size <= 1) return;
  static long ping = 1, pong_in[256];
  int n = g_size < 256 ? g_size : 256;
  MPI_Request rq[512];
  for (int p = 0; p < 2 * n; p++) rq[p] = MPI_REQUEST_NULL;
  for (int p = 0; p < n; p++) {
    if (p == g_rank) continue;
    MPI_Irecv(&pong_in[p], 1, MPI_LONG, p, TAG_PONG, MPI_COMM_WORLD, &rq[p]);
    MPI_Isend(&ping, 1, MPI_LONG, p, TAG_PING, MPI_COMM_WORLD, &rq[n + p]);
  }
  double end = MPI_Wtime() + (g_timeout < 2.0 ? g_timeout : 2.0);
  int done = 0;
  while (!done && MPI_Wtime() < end) {
    serve_pings();
    done = 1;
    for (int p = 0; p < n; p++) {
      if (rq[p] == MPI_REQUEST_NULL) continue;
      int d = 0;
      MPI_Test(&rq[p], &d, MPI_STATUS_IGNORE);
      if (!d) done = 0;
    }
    struct timespec ts = { 0, 200000 };
    nanosleep(&ts, NULL);
  }
  size_t used = 0;
  int count = 0;
  for (int p = 0; p < n; p++) {
    if (rq[p] == MPI_REQUEST_NULL) continue;
    MPI_Cancel(&rq[p]);
    MPI_Request_free(&rq[p]);
    if (used < cap - 16) used += (size_t)snprintf(out + used, cap - used, "%s%d", count ? ", " : "", p);
    count++;
  }
  for (int p = n; p < 2 * n; p++)
    if (rq[p] != MPI_REQUEST_NULL) MPI_Request_free(&rq[p]);
  if (count) {
    char tmp[400];
    snprintf(tmp, sizeof tmp, ": rank%s %s did not answer a liveness probe (died or hangs)", count > 1 ? "s" : "", out);
    snprintf(out, cap, "%s", tmp);
  }
}

/* poll one request until done or the deadline; 0 done, 1 error, 2 timeout */
static int poll_req(MPI_Request *r, double deadline, const char *what) {
  double since = MPI_Wtime();
  for (;;) {
    int done = 0;
    int rc = MPI_Test(r, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
    if (done) return 0;
    if (MPI_Wtime() > deadline) return 2;
    serve_pings();
    backoff(since);
  }
}

static int timeout_msg(const char *what) {
  char who[400];
  name_silent(who, sizeof who);
  if (who[0]) return fail("rank %d of %d: %s did not complete within %g s%s", g_rank, g_size, what, g_timeout, who);
  return fail("rank %d of %d: %s did not complete within %g s: a peer rank died or hangs", g_rank, g_size, what,
              g_timeout);
}

/* for nccl.c (hidden): answer liveness probes while polling; a timed-out wait's message */
void sp_dist_serve(void) { serve_pings(); }
int sp_dist_timeout_fail(const char *what) { return timeout_msg(what); }

static int new_handle(void) {
  for (int i = 0; i < MAXREQ; i++)
    if (!g_used[i]) { g_used[i] = 1; return i; }
  return -1;
}

int sp_dist_bcast(void *buf, size_t bytes, int root, const char *what) {
  if (g_size < 1) return fail("spore.dist is not initialised");
  if (bytes > (size_t)0x7fffffff) return fail("%s: %zu bytes is more than one broadcast can carry", what, bytes);
  MPI_Request r;
  int rc = MPI_Ibcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD, &r);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
  int s = poll_req(&r, MPI_Wtime() + g_timeout, what);
  if (s == 2) return timeout_msg(what);
  return s;
}

int sp_dist_iallreduce_f32(float *buf, size_t n, int *handle) {
  if (g_size < 1) return fail("spore.dist is not initialised");
  if (n > (size_t)0x7fffffff) return fail("all-reduce of %zu floats: too many for one call", n);
  int h = new_handle();
  if (h < 0) return fail("more than %d all-reduces outstanding", MAXREQ);
  int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[h]);
  if (rc != MPI_SUCCESS) { g_used[h] = 0; return mpi_fail(rc, "MPI_Iallreduce"); }
  *handle = h;
  return 0;
}

int sp_dist_progress(void) {
  /* testing an outstanding request drives Open MPI's progress engine (no progress thread) */
  for (int i = 0; i < MAXREQ; i++) {
    if (g_used[i] && g_req[i] != MPI_REQUEST_NULL) {
      int done = 0;
      int rc = MPI_Test(&g_req[i], &done, MPI_STATUS_IGNORE);
      if (rc != MPI_SUCCESS) return mpi_fail(rc, "progress");
    }
  }
  if (g_hb_req) {
    int done = 0;
    MPI_Testall(2 * g_size, g_hb_req, &done, MPI_STATUSES_IGNORE);
  }
  return 0;
}

int sp_dist_wait(int h, const char *what, double *waited) {
  if (h < 0 || h >= MAXREQ || !g_used[h]) return fail("%s: no such all-reduce handle %d", what, h);
  double t0 = MPI_Wtime();
  int s = 0;
  if (g_req[h] != MPI_REQUEST_NULL) s = poll_req(&g_req[h], t0 + g_timeout, what);
  if (waited) *waited = MPI_Wtime() - t0;
  if (s == 2) return timeout_msg(what);
  g_used[h] = 0;
  return s;
}

int sp_dist_allreduce_f64(double *buf, size_t n, int op, const char *what) {
  if (g_size < 1) return fail("spore.dist is not initialised");
  MPI_Request r;
  int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, op == 1 ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD, &r);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
  int s = poll_req(&r, MPI_Wtime() + g_timeout, what);
  if (s == 2) return timeout_msg(what);
  return s;
}

int sp_dist_heartbeat_post(long step) {
  if (g_size < 1) return fail("spore.dist is not initialised");
  if (g_size == 1) { g_hb_step = step; return 0; }
  g_hb_out = step;
  for (int p = 0; p < g_size; p++) {
    g_hb_req[p] = g_hb_req[g_size + p] = MPI_REQUEST_NULL;
    if (p == g_rank) continue;
    int rc = MPI_Irecv(&g_hb_in[p], 1, MPI_LONG, p, 7001, MPI_COMM_WORLD, &g_hb_req[p]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "heartbeat receive");
    rc = MPI_Isend(&g_hb_out, 1, MPI_LONG, p, 7001, MPI_COMM_WORLD, &g_hb_req[g_size + p]);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "heartbeat send");
  }
  g_hb_step = step;
  return 0;
}

int sp_dist_heartbeat_wait(long step) {
  if (g_size <= 1) return 0;
  if (g_hb_step != step) return fail("heartbeat of step %ld was never posted (last: %ld)", step, g_hb_step);
  double since = MPI_Wtime(), deadline = since + g_timeout;
  for (;;) {
    int done = 0;
    int rc = MPI_Testall(2 * g_size, g_hb_req, &done, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "heartbeat");
    if (done) break;
    serve_pings();
    if (MPI_Wtime() > deadline) {
      char who[512] = "";
      size_t used = 0;
      int count = 0;
      for (int p = 0; p < g_size; p++) {
        if (p == g_rank || g_hb_req[p] == MPI_REQUEST_NULL) continue;
        int d = 0;
        MPI_Test(&g_hb_req[p], &d, MPI_STATUS_IGNORE);
        if (d) continue;
        if (used < sizeof who - 16) used += (size_t)snprintf(who + used, sizeof who - used, "%s%d", count ? ", " : "", p);
        count++;
      }
      if (count == 0) break; /* everything arrived at the last moment (e.g. this rank was the one stopped) */
      return fail("rank %d of %d: no heartbeat for step %ld from rank%s %s within %g s: %s died or hangs", g_rank,
                  g_size, step, count > 1 ? "s" : "", who, g_timeout, count > 1 ? "they" : "it");
    }
    backoff(since);
  }
  for (int p = 0; p < g_size; p++) {
    if (p != g_rank && g_hb_in[p] != step)
      return fail("rank %d of %d: rank %d is at step %ld, this rank at step %ld: the ranks ran out of step", g_rank,
                  g_size, p, g_hb_in[p], step);
  }
  return 0;
}

int sp_dist_barrier(const char *what) {
  if (g_size < 1) return fail("spore.dist is not initialised");
  MPI_Request r;
  int rc = MPI_Ibarrier(MPI_COMM_WORLD, &r);
  if (rc != MPI_SUCCESS) return mpi_fail(rc, what);
  int s = poll_req(&r, MPI_Wtime() + g_timeout, what);
  if (s == 2) return timeout_msg(what);
  return s;
}

void sp_dist_abort(int code) {
  fflush(stdout);
  fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
}

int sp_dist_finalize(void) {
  int fin = 0;
  MPI_Finalized(&fin);
  if (fin || !g_inited_here) return 0;
  int rc = MPI_Finalize();
  if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Finalize");
  return 0;
}

#ifndef SP_DIST_NCCL
int sp_dist_have_nccl(void) { return 0; }
int sp_dist_nccl_usable(const char **why) {
  if (why) *why = "this libspore_dist.so was built without NCCL (build with `make CUDA=1`)";
  return 0;
}
int sp_dist_nccl_init(int device) { (void)device; return fail("NCCL: not built (make CUDA=1)"); }
int sp_dist_nccl_allreduce_f32(void *b, size_t n) { (void)b; (void)n; return fail("NCCL: not built (make CUDA=1)"); }
int sp_dist_nccl_selftest(size_t n, int *ok) { (void)n; *ok = 0; return fail("NCCL: not built (make CUDA=1)"); }
int sp_dist_nccl_finalize(void) { return 0; }
int sp_dist_nccl_ready(void) { return 0; }
int sp_dist_nccl_bind_engine(const char *path) { (void)path; return fail("NCCL: not built (make CUDA=1)"); }
int sp_dist_nccl_iallreduce(const void *t, size_t n, int *handle) {
  (void)t; (void)n; (void)handle;
  return fail("NCCL: not built (make CUDA=1)");
}
int sp_dist_nccl_wait(int handle, const char *what, double *waited) {
  (void)handle; (void)what; (void)waited;
  return fail("NCCL: not built (make CUDA=1)");
}
int sp_dist_nccl_bcast(const void *t, size_t bytes, int root, const char *what) {
  (void)t; (void)bytes; (void)root; (void)what;
  return fail("NCCL: not built (make CUDA=1)");
}
#endif
