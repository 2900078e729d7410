--- bindings/ffi/fs.lua — the directory listing spore.data's image folders need (libc
-- opendir/readdir/closedir under private names, as data.lua does for its libc calls).
-- The only Lua that reads directories.
local lib = require("ffi.lib")
local ffi = lib.ffi

-- glibc's struct dirent (Linux, 64-bit ino/off): d_name at offset 19.
pcall(ffi.cdef, [[
  typedef struct sp_fs_dir sp_fs_dir;
  typedef struct { uint64_t d_ino; int64_t d_off; unsigned short d_reclen; unsigned char d_type;
                   char d_name[256]; } sp_fs_dirent;
  sp_fs_dir *sp_fs_opendir(const char *name) __asm__("opendir");
  sp_fs_dirent *sp_fs_readdir(sp_fs_dir *d) __asm__("readdir");
  int sp_fs_closedir(sp_fs_dir *d) __asm__("closedir");
  char *sp_fs_strerror(int errnum) __asm__("strerror");
]])
local C = ffi.C

local M = {}

--- true when path is a directory that can be opened.
function M.is_dir(path)
  local d = C.sp_fs_opendir(path)
  if d == nil then return false end
  C.sp_fs_closedir(d)
  return true
end

--- Names in a directory (without "." and ".."), unsorted. Raises "cannot read directory
-- PATH: reason" when it cannot be opened.
function M.list(path)
  local d = C.sp_fs_opendir(path)
  if d == nil then
    error("cannot read directory " .. path .. ": " .. ffi.string(C.sp_fs_strerror(ffi.errno())), 0)
  end
  local out = {}
  while true do
    local e = C.sp_fs_readdir(d)
    if e == nil then break end
    local name = ffi.string(e.d_name)
    if name ~= "." and name ~= ".." then out[#out + 1] = name end
  end
  C.sp_fs_closedir(d)
  return out
end

return M
