/* example_host.c — a C program that embeds spore: it makes a tensor in C, hands
 * it to a Lua script, and reads the script's result back.
 * Usage: spore_host_example [SPORE_ROOT]   (prints the result, exit 0 when right) */
#include "spore_host.h"

#include <stdio.h>

int main(int argc, char **argv) {
    char err[512];
    spore_host *h = spore_host_new(argc > 1 ? argv[1] : NULL, err, sizeof err);
    if (!h) { fprintf(stderr, "spore_host_example: %s\n", err); return 1; }
    float data[6] = {1, 2, 3, 4, 5, 6};
    sp_tensor *x = NULL;
    if (sp_tensor_from_data(&x, SP_FLOAT32, 2, (int64_t[]){2, 3}, data, sizeof data)) {
        fprintf(stderr, "%s\n", sp_last_error()); return 1;
    }
    int rc = 1;
    if (spore_host_set_tensor(h, "x", x) ||
        spore_host_dostring(h, "y = x:matmul(x:t()) * 2  -- [2,3]x[3,2] -> [2,2]")) {
        fprintf(stderr, "spore_host_example: %s\n", spore_host_error(h));
    } else {
        sp_tensor *y = spore_host_get_tensor(h, "y");
        if (!y) fprintf(stderr, "spore_host_example: %s\n", spore_host_error(h));
        else {
            const float *p = sp_tensor_data(y);
            printf("y = [[%g, %g], [%g, %g]]\n", p[0], p[1], p[2], p[3]);
            rc = (p[0] == 28 && p[1] == 64 && p[2] == 64 && p[3] == 154) ? 0 : 1;
            sp_tensor_free(y);
        }
    }
    sp_tensor_free(x);
    spore_host_free(h);
    return rc;
}
