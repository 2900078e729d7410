-- nccl_probe.lua — what the libspore_dist.so in use offers for GPUs, without MPI_Init and
-- without a GPU: one JSON line {path, have_nccl, usable, why, bind, bind_error, unready_error}.
--   luajit scripts/dist/nccl_probe.lua
--   SPORE_DIST_LIB=build/cuda/libspore_dist.so luajit scripts/dist/nccl_probe.lua
-- bind: whether the NCCL path found libspore.so's sp_tensor_device_region (the engine hands
-- device addresses to it inside C); unready_error: what an NCCL all-reduce says before
-- spore.dist has set NCCL up (it must refuse, naming why, never crash).
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local spore = require("spore")
local json = require("spore.json")
local D = require("ffi.dist")
local r = { path = D.path or "", have_nccl = D.have_nccl() }
local ok, why = D.available()
if not ok then
  r.why = why
else
  r.usable, r.why = D.nccl_usable()
  r.why = r.why or ""
  r.bind, r.bind_error = D.nccl_bind_engine()
  r.bind_error = r.bind_error or ""
  local okc, err = pcall(D.iallreduce, spore.zeros({ 8 }), "nccl")
  r.unready_error = okc and "" or tostring(err)
end
print(json.encode(r))
