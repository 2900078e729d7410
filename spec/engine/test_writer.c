/* test_writer.c — the checkpoint writer's safety: unique O_EXCL temp files that never
 * follow symlinks, a lock that makes concurrent savers of one path wait, no temp file
 * or descriptor left by any failure, stale temp files of dead saves cleaned, duplicate
 * names and empty checkpoints refused (issue #13). */
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
    closedir(d);
    return n; /* includes the listing's own descriptor, the same every time */
}

/* Entries of dir other than "." and ".." whose name contains sub (NULL: all). */
static int count_entries(const char *dir, const char *sub) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && (!sub || strstr(e->d_name, sub))) n++;
    closedir(d);
    return n;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int file_is(const char *path, const char *text) {
    char buf[256] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    return n == strlen(text) && memcmp(buf, text, n) == 0;
}

/* A one-tensor .ckpt: n float32 values, every one equal to v. */
static sp_status save_fill(const char *path, int format, float v, int64_t n) {
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) return SP_ENOMEM;
    for (int64_t i = 0; i < n; i++) x[i] = v;
    sp_ckpt_writer *w = NULL;
    sp_status st = sp_ckpt_writer_open(&w, path, format, 0, NULL, 0, NULL);
    if (!st) st = sp_ckpt_writer_add_raw(w, "w", "Float32", 1, &n, x, (size_t)n * sizeof *x);
    if (!st) st = sp_ckpt_writer_commit(w);
    else sp_ckpt_writer_abort(w);
    free(x);
    return st;
}

/* 1: the file holds one float32 tensor "w" of n values, all equal to *v (set). */
static int load_fill(const char *path, int64_t n, float *v) {
    sp_ckpt *c = NULL;
    if (sp_ckpt_open(&c, path, SP_CKPT_AUTO, 0, NULL, 0, NULL) != SP_OK) return 0;
    int ok = sp_ckpt_count(c) == 1 && strcmp(sp_ckpt_name(c, 0), "w") == 0 &&
             sp_ckpt_nbytes(c, 0) == (size_t)n * sizeof(float);
    const float *x = ok ? sp_ckpt_bytes(c, 0) : NULL;
    if (ok) *v = x[0];
    for (int64_t i = 0; ok && i < n; i++) ok = x[i] == *v;
    sp_ckpt_close(c);
    return ok;
}

static pid_t dead_pid(void) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p > 0) waitpid(p, NULL, 0);
    return p;
}

SUITE(ckpt_writer_symlinks) {
    char dir[] = "/tmp/spore_wr_XXXXXX", path[256], tmp[300], victim[256], lock[300];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/m.ckpt", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s/victim.txt", dir);
    snprintf(lock, sizeof lock, "%s/.m.ckpt.lock", dir);
    write_text(victim, "precious");
    /* the old fixed temp name, planted as a symlink: ignored */
    CHECK(symlink(victim, tmp) == 0, "plant %s", tmp);
    int fds = count_fds();
    CHECK_OK(save_fill(path, SP_CKPT_PROTO, 1.0f, 100));
    float v = 0;
    CHECK(load_fill(path, 100, &v) && v == 1.0f, "the save went to the target");
    CHECK(file_is(victim, "precious"), "a symlink at path.tmp is not followed");
    struct stat st;
    CHECK(lstat(tmp, &st) == 0 && S_ISLNK(st.st_mode), "the planted symlink is left alone");
    /* a symlink at the lock file's name: the save fails clearly, nothing is followed */
    CHECK(symlink(victim, lock) == 0, "plant %s", lock);
    sp_status s = save_fill(path, SP_CKPT_PROTO, 2.0f, 100);
    CHECK(s != SP_OK && strstr(sp_last_error(), "m.ckpt") && strstr(sp_last_error(), "lock"),
          "planted lock symlink: a clear error (%s)", sp_last_error());
    CHECK(file_is(victim, "precious"), "a symlink at the lock name is not followed");
    CHECK(load_fill(path, 100, &v) && v == 1.0f, "the previous file is untouched");
    unlink(lock);
    /* a symlink that matches the temp pattern, with a dead pid: neither followed nor removed */
    char stale[400];
    snprintf(stale, sizeof stale, "%s/.m.ckpt.spore-%ld-0123456789abcdef.tmp", dir, (long)dead_pid());
    CHECK(symlink(victim, stale) == 0, "plant %s", stale);
    CHECK_OK(save_fill(path, SP_CKPT_SAFETENSORS, 3.0f, 100));
    CHECK(lstat(stale, &st) == 0 && S_ISLNK(st.st_mode) && file_is(victim, "precious"),
          "a pattern-matching symlink is neither followed nor removed");
    CHECK(load_fill(path, 100, &v) && v == 3.0f, "saved");
    CHECK(count_fds() == fds, "no descriptor leaked (%d -> %d)", fds, count_fds());
    CHECK(count_entries(dir, ".lock") == 0, "no lock file left behind");
    unlink(stale); unlink(tmp); unlink(victim); unlink(path); rmdir(dir);
}

SUITE(ckpt_writer_failures) {
    char dir[] = "/tmp/spore_wr_XXXXXX", path[256], st_path[256], bad[300];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/f.ckpt", dir);
    snprintf(st_path, sizeof st_path, "%s/f.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/missing/f.ckpt", dir);
    int fds = count_fds();
    CHECK_OK(save_fill(path, SP_CKPT_PROTO, 7.0f, 1000));
    sp_ckpt_writer *w = NULL;
    int64_t one = 1;
    float x = 1;
    /* a folder that does not exist */
    CHECK(sp_ckpt_writer_open(&w, bad, SP_CKPT_PROTO, 0, NULL, 0, NULL) != SP_OK && !w &&
          strstr(sp_last_error(), "missing"), "missing folder: %s", sp_last_error());
    /* duplicates: .ckpt (add_raw, add) and safetensors, refused when added */
    CHECK_OK(sp_ckpt_writer_open(&w, path, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    CHECK_OK(sp_ckpt_writer_add_raw(w, "a", "Float32", 1, &one, &x, 4));
    CHECK(sp_ckpt_writer_add_raw(w, "a", "Float32", 1, &one, &x, 4) != SP_OK &&
          strstr(sp_last_error(), "'a'") && strstr(sp_last_error(), "f.ckpt") && strstr(sp_last_error(), "twice"),
          "duplicate raw name: %s", sp_last_error());
    sp_tensor *t = NULL;
    CHECK_OK(sp_tensor_from_data(&t, SP_FLOAT32, 1, &one, &x, 4));
    CHECK(sp_ckpt_writer_add(w, "a", t) != SP_OK && strstr(sp_last_error(), "twice"), "duplicate tensor name");
    CHECK_OK(sp_ckpt_writer_add(w, "b", t));
    CHECK(count_entries(dir, ".tmp") == 1, "one temp file while saving");
    /* a second writer of the same path in this process: a clear error, not a deadlock */
    sp_ckpt_writer *w2 = NULL;
    CHECK(sp_ckpt_writer_open(&w2, path, SP_CKPT_PROTO, 0, NULL, 0, NULL) != SP_OK && !w2 &&
          strstr(sp_last_error(), "still open"), "second writer in-process: %s", sp_last_error());
    char other[300];
    snprintf(other, sizeof other, "%s/g.ckpt", dir); /* another path is independent */
    CHECK_OK(sp_ckpt_writer_open(&w2, other, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    sp_ckpt_writer_abort(w2);
    sp_ckpt_writer_abort(w);
    CHECK(count_entries(dir, ".tmp") == 0 && count_entries(dir, ".lock") == 0, "abort removes the temp and lock files");
    CHECK_OK(sp_ckpt_writer_open(&w, st_path, SP_CKPT_SAFETENSORS, 0, NULL, 0, NULL));
    CHECK_OK(sp_ckpt_writer_add(w, "z", t));
    CHECK(sp_ckpt_writer_add_raw(w, "z", "Float32", 1, &one, &x, 4) != SP_OK && strstr(sp_last_error(), "'z'"),
          "safetensors duplicate refused when added");
    CHECK(sp_ckpt_writer_add_raw(w, "s", "str", 1, &one, "abcd", 4) != SP_OK, "str cannot go in safetensors");
    CHECK_OK(sp_ckpt_writer_commit(w));
    /* nothing to save: refused, no file made, no temp left */
    char empty[300];
    snprintf(empty, sizeof empty, "%s/e.ckpt", dir);
    CHECK_OK(sp_ckpt_writer_open(&w, empty, SP_CKPT_PROTO, 0, NULL, 0, NULL));
    CHECK(sp_ckpt_writer_commit(w) != SP_OK && strstr(sp_last_error(), "no entries") && strstr(sp_last_error(), "e.ckpt"),
          "empty commit refused: %s", sp_last_error());
    CHECK(access(empty, F_OK) != 0, "no empty file written");
    CHECK_OK(sp_ckpt_writer_open(&w, empty, SP_CKPT_SAFETENSORS, 0, NULL, 0, NULL));
    CHECK(sp_ckpt_writer_commit(w) != SP_OK && access(empty, F_OK) != 0, "empty safetensors refused");
    /* a write that fails in the middle (file size limit = a full disk) */
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    void (*oldh)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {1 << 20, old.rlim_max};
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
    sp_status s = save_fill(path, SP_CKPT_PROTO, 9.0f, 1 << 20); /* 4 MiB */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sp_last_error());
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, oldh);
    CHECK(s != SP_OK && strstr(msg, "f.ckpt") && strstr(msg, "write"), "a failed write is reported: %s", msg);
    float v = 0;
    CHECK(load_fill(path, 1000, &v) && v == 7.0f, "the previous file is untouched");
    CHECK(count_entries(dir, ".tmp") == 0 && count_entries(dir, ".lock") == 0, "no temp or lock file after a failed write");
    /* rename onto a folder fails after everything was written */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/d.ckpt", dir);
    mkdir(sub, 0755);
    CHECK(save_fill(sub, SP_CKPT_PROTO, 1.0f, 10) != SP_OK, "rename onto a folder fails");
    CHECK(count_entries(dir, ".tmp") == 0, "no temp file after a failed rename");
    rmdir(sub);
    sp_tensor_free(t);
    CHECK(count_fds() == fds, "no descriptor leaked by any failure (%d -> %d)", fds, count_fds());
    unlink(path); unlink(st_path); rmdir(dir);
    CHECK(count_entries(dir, NULL) < 0, "every file accounted for");
}

SUITE(ckpt_writer_stale_temps) {
    char dir[] = "/tmp/spore_wr_XXXXXX", path[256], dead[400], live[400], odd[400], old[300], other[400];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/s.ckpt", dir);
    long dp = (long)dead_pid();
    snprintf(dead, sizeof dead, "%s/.s.ckpt.spore-%ld-0123456789abcdef.tmp", dir, dp);
    snprintf(live, sizeof live, "%s/.s.ckpt.spore-%ld-0123456789abcdef.tmp", dir, (long)getpid());
    snprintf(odd, sizeof odd, "%s/.s.ckpt.spore-%ld-0123456789abcdeX.tmp", dir, dp);     /* not the pattern */
    snprintf(other, sizeof other, "%s/.t.ckpt.spore-%ld-0123456789abcdef.tmp", dir, dp); /* another target */
    snprintf(old, sizeof old, "%s.tmp", path);
    write_text(dead, "x"); write_text(live, "x"); write_text(odd, "x"); write_text(other, "x"); write_text(old, "x");
    CHECK_OK(save_fill(path, SP_CKPT_PROTO, 5.0f, 10));
    CHECK(access(dead, F_OK) != 0, "a temp file of a dead save of this target is removed");
    CHECK(access(live, F_OK) == 0, "a temp file whose pid is alive is kept");
    CHECK(access(odd, F_OK) == 0 && access(other, F_OK) == 0 && access(old, F_OK) == 0,
          "files that do not match this target's pattern are kept");
    unlink(live); unlink(odd); unlink(other); unlink(old); unlink(path); rmdir(dir);
}

/* Two processes save one path at once, 16 times: both succeed (the second waits), the
 * file is exactly the state of the one that took the lock last, and nothing is left. */
SUITE(ckpt_writer_race) {
    char dir[] = "/tmp/spore_wr_XXXXXX", path[256], logp[256];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/r.ckpt", dir);
    snprintf(logp, sizeof logp, "%s/order.log", dir);
    const int64_t n = 1 << 18; /* 1 MiB each */
    int mixed = 0, failed = 0, wrong_winner = 0;
    for (int round = 0; round < 16; round++) {
        int logfd = open(logp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        int go[2];
        if (logfd < 0 || pipe(go) != 0) { CHECK(0, "pipe"); return; }
        pid_t kids[2];
        for (int k = 0; k < 2; k++) {
            kids[k] = fork();
            if (kids[k] == 0) {
                close(go[1]);
                char b;
                if (read(go[0], &b, 1) < 0) _exit(3); /* EOF: start */
                float v = (float)(round * 2 + k + 1);
                float *x = malloc((size_t)n * sizeof *x);
                if (!x) _exit(4);
                for (int64_t i = 0; i < n; i++) x[i] = v;
                sp_ckpt_writer *w = NULL;
                if (sp_ckpt_writer_open(&w, path, SP_CKPT_PROTO, 0, NULL, 0, NULL)) _exit(5);
                char id = (char)('0' + k); /* the lock is held from open to commit: log order = commit order */
                if (write(logfd, &id, 1) != 1) _exit(6);
                if (sp_ckpt_writer_add_raw(w, "w", "Float32", 1, &n, x, (size_t)n * sizeof *x)) _exit(7);
                if (sp_ckpt_writer_commit(w)) _exit(8);
                _exit(0);
            }
        }
        close(go[0]);
        close(go[1]); /* both start */
        for (int k = 0; k < 2; k++) {
            int status = 0;
            waitpid(kids[k], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed++;
        }
        close(logfd);
        char order[4] = {0};
        FILE *f = fopen(logp, "rb");
        size_t got = f ? fread(order, 1, 3, f) : 0;
        if (f) fclose(f);
        float v = 0;
        if (!load_fill(path, n, &v)) mixed++;
        else if (got != 2 || v != (float)(round * 2 + (order[1] - '0') + 1)) wrong_winner++;
    }
    CHECK(failed == 0, "every writer succeeded (%d failed)", failed);
    CHECK(mixed == 0, "every final file is one writer's whole state (%d mixed or unreadable)", mixed);
    CHECK(wrong_winner == 0, "the writer that committed last is the one in the file (%d not)", wrong_winner);
    unlink(logp);
    CHECK(count_entries(dir, NULL) == 1, "only the checkpoint is left in the folder (%d entries)", count_entries(dir, NULL));
    unlink(path); rmdir(dir);
}
