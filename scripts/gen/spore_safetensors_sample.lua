--- spore_safetensors_sample.lua OUTDIR — writes the safetensors files that
-- scripts/gen/gen_ms_fidelity_optim.py --safetensors hands to MindSpore 2.10 to read back:
--   OUTDIR/spore_dict.safetensors      a dict whose insertion order is not name order
--                                      (float32 2-d, float32 0-d, int32), as save_checkpoint writes it
--   OUTDIR/spore_dict_crc.safetensors  the same with crc_check = true (MindSpore's crc_num)
--   OUTDIR/spore_momentum_groups.ckpt  a grouped-lr Momentum (learning_rate_group_0 + learning_rate)
--                                      after 3 steps on the inputs of ms_optim_fidelity.json, which
--                                      MindSpore loads into its own optimizer (names both ways)
-- (scripts/convert.lua's output is made by the generator itself.) spec/ckpt_safetensors_ms_spec.lua
-- rewrites the same files and checks they are byte for byte the ones MindSpore read.
package.path = "lua/?.lua;lua/?/init.lua;bindings/?.lua;" .. package.path
local spore = require("spore")
local ckpt = require("spore.ckpt")

local M = {}
function M.dict()
  return ckpt.dict({
    { "zeta.weight", spore.tensor({ { 1, 2 }, { 3, 4 } }) },
    { "alpha.bias", spore.tensor({ 0.5, -0.5, 0.25 }) },
    { "mid.count", spore.tensor({ 7, 8 }, "int32") },
    { "beta", spore.tensor(2.5) },
  })
end
function M.write(dir)
  ckpt.save_checkpoint(M.dict(), dir .. "/spore_dict.safetensors")
  ckpt.save_checkpoint(M.dict(), dir .. "/spore_dict_crc.safetensors", { crc_check = true })
end

function M.momentum_groups()
  local f = assert(io.open("spec/fixtures/ms_optim_fidelity.json", "rb"))
  local G = require("dkjson").decode(f:read("*a"))
  f:close()
  local function t(e) return spore.tensor(e.values, "float32"):reshape(e.shape) end
  local names = { "fc.weight", "fc.bias", "bn.gamma" }
  local ps = {}
  for i, n in ipairs(names) do ps[i] = spore.nn.Parameter(t(G.inputs[n]), n, true) end
  local opt = spore.optim.Momentum({ { params = { ps[1] }, lr = 0.05, weight_decay = 0.01 }, { params = { ps[2], ps[3] } } },
    0.1, 0.9)
  for s = 1, 3 do
    for i, p in ipairs(ps) do p.grad = t(G.inputs.grads[s][i]) end
    opt:step()
  end
  return opt
end
function M.write_ckpt(dir) ckpt.save_checkpoint(M.momentum_groups(), dir .. "/spore_momentum_groups.ckpt") end

if arg and arg[0] and arg[0]:match("spore_safetensors_sample%.lua$") then
  M.write(assert(arg[1], "usage: luajit scripts/gen/spore_safetensors_sample.lua OUTDIR"))
  M.write_ckpt(arg[1])
end
return M
