-- ckpt_safetensors_ms_spec.lua — safetensors that MindSpore 2.10 reads. MindSpore's reader
-- rejects a header whose entries are not in data-offset order ("Fail to parse the input
-- safetensors"), which spore's writer used to produce (keys sorted, data in saved order).
-- scripts/gen/gen_ms_fidelity_optim.py --safetensors had spore write files and MindSpore load
-- them (spec/fixtures/ms_safetensors_readback.json); here spore writes them again and they
-- must be byte for byte the files MindSpore loaded, with MindSpore's values.
require("spec.helper")
local spore = require("spore")
local ckpt = require("spore.ckpt")
local json = require("dkjson")
local H = spec_helper

local G = json.decode(H.read_file(assert(H.local_fixture("ms_safetensors_readback.json"))))
local DIR = H.root .. "/spec/fixtures/spore_written/"

local function header_offsets(bytes)
  local n = 0
  for i = 8, 1, -1 do n = n * 256 + bytes:byte(i) end
  local hdr = json.decode(bytes:sub(9, 8 + n))
  -- dkjson keeps no key order: find each entry's position in the header text instead
  local text = bytes:sub(9, 8 + n)
  local list = {}
  for name, e in pairs(hdr) do
    if name ~= "__metadata__" then
      list[#list + 1] = { pos = assert(text:find('"' .. name .. '":', 1, true)), name = name, off = e.data_offsets }
    end
  end
  table.sort(list, function(a, b) return a.pos < b.pos end)
  return list
end

local function golden(file)
  for _, f in ipairs(G.files) do if f.file == file then return f end end
  error("no golden for " .. file)
end

describe("safetensors written by spore load in MindSpore 2.10", function()
  it("MindSpore loaded every file spore wrote (crc_check where named)", function()
    assert.is_true(#G.files >= 3)
    for _, f in ipairs(G.files) do assert.is_true(f.loaded, f.file .. ": " .. tostring(f.error)) end
  end)

  it("save_checkpoint{format=safetensors} writes those bytes again, header in data-offset order", function()
    local sample = dofile(H.root .. "/scripts/gen/spore_safetensors_sample.lua")
    local dir = H.tmpdir()
    sample.write(dir)
    for _, name in ipairs({ "spore_dict.safetensors", "spore_dict_crc.safetensors" }) do
      local mine, theirs = H.read_file(dir .. "/" .. name), H.read_file(DIR .. name)
      assert.is_true(mine == theirs, name .. ": differs from the file MindSpore loaded (rerun the generator?)")
      local prev = -1
      for _, e in ipairs(header_offsets(mine)) do
        assert.is_true(e.off[1] > prev or (e.off[1] == prev and e.off[2] == prev), name .. ": '" .. e.name .. "' out of order")
        prev = e.off[1]
      end
      -- MindSpore's values are spore's
      local d = ckpt.load_checkpoint(dir .. "/" .. name)
      for _, e in ipairs(golden(name).entries) do
        assert.same(e.values, d[e.name]:flat(), name .. " " .. e.name)
        assert.same(e.shape, d[e.name]:shape())
      end
    end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("a grouped-lr optimizer checkpoint spore writes loads whole into MindSpore's optimizer, MindSpore's values", function()
    local r = G.spore_ckpt_into_mindspore
    assert.same({}, r.param_not_load); assert.same({}, r.ckpt_not_load)
    assert.is_true(r.max_rel_err_vs_mindspore_run <= 1e-6, "relative error " .. r.max_rel_err_vs_mindspore_run)
    local sample = dofile(H.root .. "/scripts/gen/spore_safetensors_sample.lua")
    local dir = H.tmpdir()
    sample.write_ckpt(dir)
    assert.is_true(H.read_file(dir .. "/spore_momentum_groups.ckpt") == H.read_file(DIR .. "spore_momentum_groups.ckpt"),
      "spore's grouped Momentum checkpoint differs from the one MindSpore loaded (rerun the generator?)")
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("scripts/convert.lua .ckpt -> .safetensors: the bytes MindSpore loaded, MindSpore's values of the .ckpt", function()
    local dir = H.tmpdir()
    local out = dir .. "/c.safetensors"
    local _, rc = H.run(("luajit scripts/convert.lua spec/fixtures/ms_momentum.ckpt %s >/dev/null 2>&1"):format(out))
    assert.equal(0, rc)
    local name = "convert_ms_momentum.safetensors"
    assert.is_true(H.read_file(out) == H.read_file(DIR .. name), "convert.lua output differs from the file MindSpore loaded")
    local g = golden(name)
    local by = {}
    for _, e in ipairs(g.entries) do by[e.name] = e.values end
    for _, e in ipairs(G.convert_source) do assert.same(e.values, by[e.name], e.name) end
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
