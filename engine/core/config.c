/* config.c — process-wide engine settings, set explicitly by the caller (lua/spore maps
 * its environment variables onto these; the engine itself reads no environment). The
 * .ckpt reader's settings live with the reader (engine/io/ckpt_read.c). */
#include "core/internal.h"

#include <cblas.h>

atomic_int sp_cfg_nn_omp = 0;

void sp_config_set_nn_omp(int on) { atomic_store(&sp_cfg_nn_omp, on ? 1 : 0); }
int sp_config_nn_omp(void) { return atomic_load(&sp_cfg_nn_omp); }

const char *sp_blas_core(void) {
    const char *n = openblas_get_corename();
    return n ? n : "unknown";
}
