/* example_host.c — the smallest C host: a tensor made in C goes to a chunk of Lua as a lent
 * buffer, and the chunk's result comes back into a C buffer.
 * Usage: spore_host_example [SPORE_ROOT]   (prints the result, exit 0 when right) */
#include "spore_host.h"

#include <stdio.h>

int main(int argc, char **argv) {
    spore_vm *vm;
    spore_vm_opts o = {.root = argc > 1 ? argv[1] : NULL};
    if (spore_vm_open(&vm, &o)) { fprintf(stderr, "spore_host_example: %s\n", spore_vm_error(NULL)); return 1; }
    float x[6] = {1, 2, 3, 4, 5, 6}, y[4];
    int rc = 1;
    if (spore_vm_dostring(vm, "function f(x) return x:matmul(x:t()) * 2 end  -- [2,3]x[3,2] -> [2,2]")) {
        fprintf(stderr, "spore_host_example: %s\n", spore_vm_error(vm));
    } else {
        spore_value arg = spore_tensor(x, SP_FLOAT32, 2, (int64_t[]){2, 3});
        spore_value res = spore_tensor(y, SP_FLOAT32, 2, (int64_t[]){2, 2}); /* copied into y */
        if (spore_vm_call(vm, "f", &arg, 1, &res, 1)) {
            fprintf(stderr, "spore_host_example: %s\n", spore_vm_error(vm));
        } else {
            printf("y = [[%g, %g], [%g, %g]]\n", y[0], y[1], y[2], y[3]);
            rc = (y[0] == 28 && y[1] == 64 && y[2] == 64 && y[3] == 154) ? 0 : 1;
        }
    }
    spore_vm_close(vm);
    return rc;
}
