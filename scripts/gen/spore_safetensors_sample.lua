--- spore_safetensors_sample.lua OUTDIR — writes the safetensors files that
-- scripts/gen/gen_ms_fidelity_optim.py --safetensors hands to MindSpore 2.10 to read back:
--   OUTDIR/spore_dict.safetensors      a dict whose insertion order is not name order
--                                      (float32 2-d, float32 0-d, int32), as save_checkpoint writes it
--   OUTDIR/spore_dict_crc.safetensors  the same with crc_check = true (MindSpore's crc_num)
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

if arg and arg[0] and arg[0]:match("spore_safetensors_sample%.lua$") then
  M.write(assert(arg[1], "usage: luajit scripts/gen/spore_safetensors_sample.lua OUTDIR"))
end
return M
