/* sigint.c — Ctrl-C as a flag for an interactive loop (see spore.h, "interrupt").
 * The handler stores one sig_atomic_t and returns: nothing else runs in signal context,
 * whichever thread (the main one, an OpenMP or BLAS worker) the kernel delivers it to.
 * The Lua REPL polls sp_sigint_take() from a count hook and raises its interrupt there. */
#include <signal.h>
#include <string.h>

#include "spore.h"

static volatile sig_atomic_t g_sigint;
static struct sigaction g_prev;
static int g_installed;

static void on_sigint(int sig) {
  (void)sig;
  g_sigint = 1;
}

int sp_sigint_catch(int on) {
  if (on) {
    if (g_installed) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, &g_prev) != 0) return -1;
    g_installed = 1;
    g_sigint = 0;
    return 0;
  }
  if (!g_installed) return 0;
  if (sigaction(SIGINT, &g_prev, NULL) != 0) return -1;
  g_installed = 0;
  return 0;
}

int sp_sigint_take(void) {
  if (!g_sigint) return 0;
  g_sigint = 0;
  return 1;
}
