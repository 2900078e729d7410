/* check.h — a tiny harness for the C-level engine checks. Each CHECK is one
 * assertion; main() in main.c runs every registered suite and prints
 * "engine: N passed, N failed". */
#ifndef SPORE_CHECK_H
#define SPORE_CHECK_H
#include <stdio.h>
#include "spore.h"

extern int check_passed, check_failed;
#define CHECK(cond, ...) do { \
    if (cond) check_passed++; \
    else { check_failed++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
           fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)
#define CHECK_OK(call) do { sp_status st_ = (call); \
    CHECK(st_ == SP_OK, "%s -> %d: %s", #call, st_, sp_last_error()); } while (0)

typedef void (*check_suite)(void);
void check_register(const char *name, check_suite fn);
#define SUITE(name) \
    static void name(void); \
    __attribute__((constructor)) static void reg_##name(void) { check_register(#name, name); } \
    static void name(void)
#endif
