-- core_matmul.lua — median GFLOP/s of a 512×512×512 float32 matmul, spore vs PyTorch.
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "../boot.lua")
local spore = require("spore")
local U = dofile((arg[0]:match("^(.-)[^/\\]*$")) .. "util.lua")
local n, reps = 512, 7
local a, b = spore.randn{n, n}, spore.randn{n, n}
local out = spore.empty{n, n}
local times = {}
for r = 1, reps do
  local t0 = U.now()
  for _ = 1, 10 do
    local c = a:matmul(b)
    c:free()
  end
  times[r] = (U.now() - t0) / 10
end
local flops = 2 * n * n * n
local sp = flops / U.median(times) / 1e9
local torch = U.python([[
import time, torch, statistics
torch.set_num_threads(2)
n = 512
a, b = torch.randn(n, n), torch.randn(n, n)
ts = []
for r in range(7):
    t0 = time.perf_counter()
    for _ in range(10): c = a @ b
    ts.append((time.perf_counter() - t0) / 10)
print(2 * n ** 3 / statistics.median(ts) / 1e9)
]])
U.emit{ name = "matmul_512_f32", unit = "GFLOP/s", spore = sp, peers = { torch = torch },
  ratio_vs_torch = torch and sp / torch or nil, runs = reps, higher_is_better = true }
out:free()
