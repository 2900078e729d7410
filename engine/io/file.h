/* file.h — engine-private: opening a user's file for reading, shared by every reader
 * (checkpoints, idx/CIFAR data, images, .npy). */
#ifndef SPORE_IO_FILE_H
#define SPORE_IO_FILE_H
#include <stdint.h>
struct stat;

/* Open path read-only without blocking (O_NONBLOCK, then cleared: a FIFO or a device
 * would block), refuse anything but a regular file, and give its size (and stat, when sb
 * is not NULL). Returns the fd, or -1 with sp_last_error set: "file '<path>': cannot
 * open: ...", "... is a directory, expected <what>" (what: "a regular file", "an image
 * file", ...). */
int sp_io_open_regular(const char *path, const char *what, uint64_t *size, struct stat *sb);
#endif
