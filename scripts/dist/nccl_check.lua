-- nccl_check.lua — the NCCL path of spore.dist: under `mpirun -np 2`, both processes on GPU 0,
-- rank 0 makes the ncclUniqueId, MPI broadcasts it, and a float32 all-reduce in device memory
-- is checked. Skips (exit 0, one line saying why) when this libspore_dist.so has no NCCL
-- (build with `make CUDA=1`), or NCCL, the CUDA runtime or a GPU is missing.
--   SPORE_DIST_LIB=build/cuda/libspore_dist.so mpirun -np 2 luajit scripts/dist/nccl_check.lua
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local dist = require("spore.dist")
local ok, why = dist.available()
if not ok then print("nccl_check: SKIPPED: " .. why); os.exit(0) end
local D = require("ffi.dist")
if not D.have_nccl() then print("nccl_check: SKIPPED: " .. select(2, D.nccl_usable())); os.exit(0) end
local usable, w = D.nccl_usable()
if not usable then print("nccl_check: SKIPPED: " .. w); os.exit(0) end
dist.init({ backend = "nccl" })
local good = D.nccl_selftest(1048576)
local all = dist.allreduce_numbers({ good and 1 or 0 }, "sum", "nccl check")[1]
if dist.rank == 0 then
  print(("nccl_check: %d ranks, all-reduce of 1M floats in device memory: %s"):format(dist.size,
    all == dist.size and "correct" or "WRONG"))
end
dist.finalize()
os.exit(all == dist.size and 0 or 1)
