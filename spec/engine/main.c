/* main.c — runs every SUITE registered by the spec/engine/ C files. */
#include "check.h"
#include <string.h>

int check_passed, check_failed;
static struct { const char *name; check_suite fn; } suites[256];
static int nsuites;

void check_register(const char *name, check_suite fn) {
    if (nsuites < 256) { suites[nsuites].name = name; suites[nsuites].fn = fn; nsuites++; }
}

int main(int argc, char **argv) {
    for (int i = 0; i < nsuites; i++) {
        if (argc > 1 && !strstr(suites[i].name, argv[1])) continue;
        int f0 = check_failed, p0 = check_passed;
        suites[i].fn();
        printf("  %-32s %4d passed, %d failed\n", suites[i].name, check_passed - p0, check_failed - f0);
    }
    printf("engine: %d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
