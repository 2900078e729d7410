--- spore.train.amp — mixed precision, as MindSpore's mindspore.amp:
--   amp.auto_mixed_precision(net, "O2")   (Model(..., {amp_level = "O2"}) calls it)
-- "O2" on the CPU: every Conv2d and Dense computes in bfloat16 (operands rounded to bf16
-- while packed, float32 accumulation; AMX tiles or vdpbf16ps where the CPU has them,
-- spore.config().bf16_kernel), while
-- BatchNorm (MindSpore's O2 black list), the loss and the master weights stay float32;
-- checkpoints stay float32 under the same names. The activations between layers: in training
-- (and any forward a backward may follow) float32; under spore.inference_mode (Model:eval and
-- Model:predict run in it), an eval-mode fused Conv2d + BatchNorm (+ join, ReLU) writes bf16
-- where the next reader is another such fused bf16 convolution (a ResNet's blocks: all but the
-- stem's, which feeds the max pool, and the last block's), as MindSpore's O2 passes float16
-- between its cells; each such run rounds its float32 result once (spore.nn.chain).
-- Differences from MindSpore, which casts the network to float16 for O2: spore's CPU O2
-- computes in bfloat16 (float32's exponent range, so no loss scale is needed; MindSpore's O2
-- default DynamicLossScaleManager, which MindSpore itself refuses on the CPU, is not
-- applied — pass loss_scale_manager to Model to scale). "O0" sets float32 back. "O1" (per
-- operator white list) and "O3" (BatchNorm in low precision too) are refused by name.
-- Devices: cpu and sim run the bf16 kernels; cuda refuses them (engine: "not implemented
-- on device cuda:0"), so O2 is refused up front there.
local K = require("ffi.nn")
local M = {}

M.LEVELS = { O0 = true, O2 = true }
local REFUSED = {
  O1 = "spore implements amp_level 'O0' and 'O2' (O1 casts per operator white list: not implemented)",
  O3 = "spore implements amp_level 'O0' and 'O2' (O3 runs BatchNorm in low precision too: not implemented)",
  auto = "spore implements amp_level 'O0' and 'O2' ('auto' is not implemented)",
}
M.REFUSED = REFUSED

local LOW = { Conv2d = true, Dense = true } -- the cells that compute in bf16 under O2

--- check(level, where, lvl) → level, or raises naming where and the level.
function M.check(level, where, lvl)
  if M.LEVELS[level] then return level end
  if REFUSED[level] then error(("%s: amp_level '%s' is MindSpore's, but %s"):format(where, level, REFUSED[level]), lvl or 2) end
  error(("%s: amp_level must be one of 'O0', 'O1', 'O2', 'O3', 'auto', got '%s'"):format(where, tostring(level)), lvl or 2)
end

--- auto_mixed_precision(net, level="O0") → net: Conv2d and Dense cells compute in bf16
-- under "O2", in float32 under "O0". The net is changed in place (as MindSpore's).
function M.auto_mixed_precision(net, level)
  level = M.check(level or "O0", "auto_mixed_precision", 3)
  if type(net) ~= "table" or type(net.cells_and_names) ~= "function" then
    error("auto_mixed_precision: net must be a module", 2)
  end
  local low = level == "O2"
  if low then
    local dev = net:device()
    if dev ~= "cpu" and dev ~= "sim" then
      error(("auto_mixed_precision: amp_level 'O2' computes in bfloat16 on the CPU (and sim) only; the net is on %s")
        :format(dev), 2)
    end
  end
  for _, e in ipairs(net:cells_and_names()) do
    local m = e[2]
    if LOW[getmetatable(m).__name] then rawset(m, "_bf16", low or nil) end
  end
  rawset(net, "_amp_level", level)
  return net
end

--- true when this CPU has AVX512_BF16 (then the avx512 bf16 kernel, and amx where AMX-BF16
-- is granted too, run; spore.config().bf16_kernels lists them); elsewhere a portable loop
-- gives the same results, slowly.
function M.cpu_has_bf16() return K.cpu_has_bf16() end

return M
