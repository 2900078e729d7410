/* spore_host.c — embedding LuaJIT + spore. Tensors cross the boundary as aliases
 * (sp_tensor_alias), so each side owns and frees its own handle. */
#include "spore_host.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct spore_host {
    lua_State *L;
    char err[1024];
};

static int fail(spore_host *h) {
    const char *m = lua_tostring(h->L, -1);
    snprintf(h->err, sizeof h->err, "%s", m ? m : "(non-string error)");
    lua_pop(h->L, 1);
    return 1;
}

spore_host *spore_host_new(const char *root, char *err, size_t errlen) {
    if (!root) root = getenv("SPORE_ROOT");
    if (!root) { if (err) snprintf(err, errlen, "spore_host_new: no root given and SPORE_ROOT is unset"); return NULL; }
    spore_host *h = calloc(1, sizeof *h);
    if (!h) { if (err) snprintf(err, errlen, "out of memory"); return NULL; }
    h->L = luaL_newstate();
    if (!h->L) { free(h); if (err) snprintf(err, errlen, "cannot create a Lua state"); return NULL; }
    luaL_openlibs(h->L);
    /* the engine is linked into this process: the bindings use ffi.C */
    lua_pushboolean(h->L, 1);
    lua_setglobal(h->L, "SPORE_LIB_SELF");
    char code[4096];
    snprintf(code, sizeof code,
             "local root = [==[%s]==]\n"
             "package.path = root .. '/lua/?.lua;' .. root .. '/lua/?/init.lua;' .. package.path\n"
             "spore = require('spore')\n"
             "local ffi = require('ffi')\n"
             "function __spore_host_wrap(p) return spore.Tensor.__wrap_alias(ffi.cast('sp_tensor*', p)) end\n",
             root);
    if (luaL_dostring(h->L, code)) {
        if (err) snprintf(err, errlen, "%s", lua_tostring(h->L, -1));
        lua_close(h->L);
        free(h);
        return NULL;
    }
    return h;
}

void spore_host_free(spore_host *h) {
    if (!h) return;
    lua_close(h->L); /* runs the ffi.gc finalisers: Lua's handles are released */
    free(h);
}

int spore_host_dostring(spore_host *h, const char *code) { return luaL_dostring(h->L, code) ? fail(h) : 0; }
int spore_host_dofile(spore_host *h, const char *path) { return luaL_dofile(h->L, path) ? fail(h) : 0; }
const char *spore_host_error(const spore_host *h) { return h->err; }
lua_State *spore_host_lua(spore_host *h) { return h->L; }

int spore_host_set_tensor(spore_host *h, const char *name, const sp_tensor *t) {
    lua_getglobal(h->L, "__spore_host_wrap");
    lua_pushlightuserdata(h->L, (void *)t);
    if (lua_pcall(h->L, 1, 1, 0)) return fail(h);
    lua_setglobal(h->L, name);
    return 0;
}

sp_tensor *spore_host_get_tensor(spore_host *h, const char *name) {
    lua_getglobal(h->L, name);
    lua_getglobal(h->L, "spore");
    lua_getfield(h->L, -1, "Tensor");
    lua_getfield(h->L, -1, "__host_handle");
    lua_pushvalue(h->L, -4);
    if (lua_pcall(h->L, 1, 1, 0)) {
        const char *m = lua_tostring(h->L, -1);
        snprintf(h->err, sizeof h->err, "global '%s': %s", name, m ? m : "?");
        lua_pop(h->L, 4);
        return NULL;
    }
    /* the Lua side returns the address of its handle as a number */
    const sp_tensor *t = (const sp_tensor *)(intptr_t)lua_tonumber(h->L, -1);
    lua_pop(h->L, 4);
    sp_tensor *out = NULL;
    if (!t || sp_tensor_alias(&out, t) != SP_OK) {
        snprintf(h->err, sizeof h->err, "global '%s' is not a tensor", name);
        return NULL;
    }
    return out;
}
