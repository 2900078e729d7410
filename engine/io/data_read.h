/* data_read.h — engine-private helper shared by the dataset decoders (idx.c, cifar.c). */
#ifndef SPORE_IO_DATA_READ_H
#define SPORE_IO_DATA_READ_H
#include "spore.h"

/* Read the whole content of path (gzip decompressed when the file starts with the
 * gzip magic 1f 8b; concatenated members are one stream, any other bytes after the
 * last member are an error), at most cap + 1 bytes (so that data past cap is seen).
 * Only a regular file is read (a FIFO, directory or device is refused at open,
 * without blocking). *buf is malloc'd (free it); errors name the file. */
sp_status sp_data_read_all(const char *path, size_t cap, unsigned char **buf, size_t *len);
#endif
