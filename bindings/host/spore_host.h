/* spore_host.h — embed LuaJIT + spore in a C program (a game-engine-style host).
 *
 *   spore_host *h = spore_host_new("/path/to/spore", err, sizeof err);
 *   spore_host_set_tensor(h, "input", my_tensor);     // Lua gets its own alias
 *   spore_host_dostring(h, "output = spore.models.lenet5{}:forward(input)");
 *   sp_tensor *out = spore_host_get_tensor(h, "output"); // owned alias, sp_tensor_free it
 *   spore_host_free(h);
 *
 * Every call that can fail returns 0 on success; the message is in spore_host_error(h).
 */
#ifndef SPORE_HOST_H
#define SPORE_HOST_H
#include <stddef.h>
#include "spore.h"

typedef struct spore_host spore_host;
typedef struct lua_State lua_State;

/* root: the spore tree (holding lua/ and bindings/), or NULL for $SPORE_ROOT. */
spore_host *spore_host_new(const char *root, char *err, size_t errlen);
void spore_host_free(spore_host *h);
int spore_host_dostring(spore_host *h, const char *code);
int spore_host_dofile(spore_host *h, const char *path);
const char *spore_host_error(const spore_host *h);
lua_State *spore_host_lua(spore_host *h);
/* Make the Lua global `name` a tensor aliasing t (t stays owned by the caller). */
int spore_host_set_tensor(spore_host *h, const char *name, const sp_tensor *t);
/* An owned alias of the tensor in Lua global `name`, or NULL (see spore_host_error). */
sp_tensor *spore_host_get_tensor(spore_host *h, const char *name);
#endif
