/* nn_pin.c — keep libspore (and with it libgomp) loaded until the process ends.
 * LuaJIT dlclose()s an ffi.load'ed library at lua_close; libgomp's idle worker threads
 * (started by the OpenMP kernels) then run unmapped code and the process crashes at
 * exit. Marking the library RTLD_NODELETE from a constructor prevents that. */
#include <dlfcn.h>

__attribute__((constructor)) static void sp_pin_library(void) {
    Dl_info info;
    if (dladdr((void *)sp_pin_library, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    (void)dlopen("libgomp.so.1", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}
