--- bindings/ffi/dist.lua — loads build/libspore_dist.so (engine/dist: Open MPI, and NCCL in a
-- CUDA build) and wraps its C API for lua/spore/dist. Loaded only when spore.dist is used: a
-- plain build and a single process never open it (nor libmpi).
-- Library search: $SPORE_DIST_LIB, then libspore_dist.so next to the libspore.so in use, then
-- <root>/build/libspore_dist.so, then the system path. Opened RTLD_GLOBAL: Open MPI's plugins
-- resolve libmpi's symbols through the global namespace.
local ffi = require("ffi")
local lib = require("ffi.lib")

local M = {}

local here = (debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or ".")

ffi.cdef(require("ffi.dist_cdef")) -- generated from engine/dist/spore_dist.h

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local C, load_err
do
  local cands, tried = {}, {}
  local env = os.getenv("SPORE_DIST_LIB")
  if env and env ~= "" then cands[#cands + 1] = env end
  local dir = type(lib.path) == "string" and lib.path:match("^(.*)/[^/]+$")
  if dir then cands[#cands + 1] = dir .. "/libspore_dist.so" end
  cands[#cands + 1] = here .. "/../../build/libspore_dist.so"
  for _, p in ipairs(cands) do
    if exists(p) then
      local ok, l = pcall(ffi.load, p, true)
      if ok then C, M.path = l, p; break end
      tried[#tried + 1] = p .. " (" .. tostring(l) .. ")"
    else
      tried[#tried + 1] = p
    end
  end
  if not C then
    local ok, l = pcall(ffi.load, "spore_dist", true)
    if ok then C, M.path = l, "libspore_dist (system path)" else
      load_err = "libspore_dist.so not found (tried " .. table.concat(tried, ", ")
        .. "): install Open MPI (make deps: openmpi-bin libopenmpi-dev) and run make"
    end
  end
end

--- true, or false and why the library cannot be used
function M.available()
  if C then return true end
  return false, load_err
end

local function need()
  if not C then error("spore.dist: " .. load_err, 3) end
end

local function check(rc, ctx)
  if rc ~= 0 then
    local msg = ffi.string(C.sp_dist_last_error())
    error("spore.dist: " .. (ctx and (ctx .. ": ") or "") .. msg, 0)
  end
end

local ELSIZE = { float32 = 4, float64 = 8, int32 = 4, int64 = 8, uint8 = 1, int8 = 1, bool = 1, float16 = 2,
  bfloat16 = 2, int16 = 2, uint16 = 2, uint32 = 4, uint64 = 8 }

-- a host, contiguous tensor holding t's values (t itself when it is one), and whether it is a copy
local function host(t)
  if t:device() == "cpu" and t:is_contiguous() then return t, false end
  return t:to("cpu"):contiguous(), true
end

function M.init()
  need()
  local r, s = ffi.new("int[1]"), ffi.new("int[1]")
  check(C.sp_dist_init(r, s), "init")
  return r[0], s[0]
end
function M.set_timeout(s) need(); C.sp_dist_set_timeout(s) end
function M.timeout() return C and C.sp_dist_timeout() or 20 end
function M.wtime() need(); return C.sp_dist_wtime() end

-- NCCL calls take the tensor's engine handle: libspore_dist.so finds the device address and
-- stream in C (sp_tensor_device_region), so no device pointer ever reaches Lua
local function nccl_tensor(t, what)
  if not t:is_contiguous() then error("spore.dist: " .. what .. ": NCCL needs a contiguous tensor", 3) end
  return t:handle()
end

--- Broadcast tensor t (any dtype) from root, in place; via "nccl": with NCCL, in t's
-- device memory (t on the communicator's GPU), else MPI (device tensors through host copies).
function M.bcast(t, root, what, via)
  need()
  if t:numel() == 0 then return end
  if via == "nccl" then
    check(C.sp_dist_nccl_bcast(nccl_tensor(t, what), t:nbytes(), root, what), nil)
    return
  end
  local h, copied = host(t)
  check(C.sp_dist_bcast(h:ptr(), h:numel() * ELSIZE[h:dtype()], root, what), nil)
  if copied then t:copy_(h) end
end

--- Start an in-place sum all-reduce of float32 tensor t; returns a handle for wait. via
-- "nccl": NCCL on t's device memory, queued after the device's pending kernels.
function M.iallreduce(t, via)
  need()
  if t:dtype() ~= "float32" then error("spore.dist: all-reduce of gradients needs float32, got " .. t:dtype(), 2) end
  if via == "nccl" then
    local out = ffi.new("int[1]")
    check(C.sp_dist_nccl_iallreduce(nccl_tensor(t, "all-reduce"), t:numel(), out), "all-reduce")
    return { id = out[0], nccl = true, keep = t }
  end
  local h, copied = host(t)
  local out = ffi.new("int[1]")
  check(C.sp_dist_iallreduce_f32(h:ptr(), h:numel(), out), "all-reduce")
  return { id = out[0], host = h, target = copied and t or nil }
end
function M.progress() if C then check(C.sp_dist_progress(), "progress") end end
--- Complete an all-reduce (by the deadline); returns the seconds spent waiting.
local waited = ffi.new("double[1]")
function M.wait(req, what)
  if req.nccl then
    check(C.sp_dist_nccl_wait(req.id, what, waited), nil)
    return waited[0]
  end
  check(C.sp_dist_wait(req.id, what, waited), nil)
  if req.target then req.target:copy_(req.host) end
  return waited[0]
end

--- In-place all-reduce of an array of Lua numbers (as doubles): op "sum" or "max".
function M.allreduce_numbers(list, op, what)
  need()
  local n = #list
  if n == 0 then return list end
  local buf = ffi.new("double[?]", n)
  for i = 1, n do buf[i - 1] = list[i] end
  check(C.sp_dist_allreduce_f64(buf, n, op == "max" and 1 or 0, what), nil)
  for i = 1, n do list[i] = buf[i - 1] end
  return list
end

function M.heartbeat_post(step) need(); check(C.sp_dist_heartbeat_post(step), "heartbeat") end
function M.heartbeat_wait(step) need(); check(C.sp_dist_heartbeat_wait(step), nil) end
function M.barrier(what) need(); check(C.sp_dist_barrier(what), nil) end
function M.abort(code) if C then C.sp_dist_abort(code or 1) end; os.exit(code or 1) end
function M.finalize() if C and C.sp_dist_initialized() == 1 then check(C.sp_dist_finalize(), "finalize") end end

--- NCCL: true when this build has it; usable() → true or false, why
function M.have_nccl() return C ~= nil and C.sp_dist_have_nccl() == 1 end
function M.nccl_usable()
  if not C then return false, load_err end
  local why = ffi.new("const char*[1]")
  if C.sp_dist_nccl_usable(why) == 1 then return true end
  return false, ffi.string(why[0])
end
function M.nccl_init(dev) need(); check(C.sp_dist_nccl_init(dev or 0), "NCCL init") end
function M.nccl_selftest(n)
  need()
  local ok = ffi.new("int[1]")
  check(C.sp_dist_nccl_selftest(n or 1024, ok), "NCCL self-test")
  return ok[0] == 1
end
function M.nccl_finalize() if C then C.sp_dist_nccl_finalize() end end
function M.nccl_ready() return C ~= nil and C.sp_dist_nccl_ready() == 1 end
--- Let the NCCL path find tensors' device memory through the libspore.so in use; true, or
-- false and why (a plain build: NCCL is not built).
function M.nccl_bind_engine()
  need()
  if C.sp_dist_nccl_bind_engine(type(lib.path) == "string" and lib.path or nil) ~= 0 then
    return false, ffi.string(C.sp_dist_last_error())
  end
  return true
end

return M
