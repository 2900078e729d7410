-- ckpt_gen_resnet50.lua OUT — write a ResNet50 (model zoo, class_num 1001) + Momentum
-- checkpoint with spore's own writer: the 267 network tensors in MindSpore order,
-- then global_step, learning_rate, momentum and moments.<p> for the 161 trainable
-- ones (about 205 MB). Values are a cheap deterministic fill. Also writes OUT.tsv (the
-- float32 tensors' names and dims).
package.path = (arg[0]:match("^(.-)[^/]*$") or "./") .. "../../lua/?.lua;" ..
  (arg[0]:match("^(.-)[^/]*$") or "./") .. "../../lua/?/init.lua;" .. package.path
local spore = require("spore")
local out = assert(arg[1], "usage: ckpt_gen_resnet50.lua OUT")

local names, shapes, trainable = {}, {}, {}
local function add(n, s, tr) names[#names + 1] = n; shapes[n] = s; trainable[n] = tr end
local function bn(p, c)
  add(p .. ".moving_mean", { c }, false); add(p .. ".moving_variance", { c }, false)
  add(p .. ".gamma", { c }, true); add(p .. ".beta", { c }, true)
end
add("conv1.weight", { 64, 3, 7, 7 }, true); bn("bn1", 64)
local inc = 64
for L, spec in ipairs({ { 3, 64 }, { 4, 128 }, { 6, 256 }, { 3, 512 } }) do
  local n, c = spec[1], spec[2]
  for i = 0, n - 1 do
    local p = "layer" .. L .. "." .. i
    local cin = i == 0 and inc or c * 4
    add(p .. ".conv1.weight", { c, cin, 1, 1 }, true); bn(p .. ".bn1", c)
    add(p .. ".conv2.weight", { c, c, 3, 3 }, true); bn(p .. ".bn2", c)
    add(p .. ".conv3.weight", { c * 4, c, 1, 1 }, true); bn(p .. ".bn3", c * 4)
    if i == 0 then
      add(p .. ".down_sample_layer.0.weight", { c * 4, cin, 1, 1 }, true); bn(p .. ".down_sample_layer.1", c * 4)
    end
  end
  inc = c * 4
end
add("end_point.weight", { 1001, 2048 }, true); add("end_point.bias", { 1001 }, true)
assert(#names == 267, "expected 267 tensors, got " .. #names)

local items, ntrain = {}, 0
for _, n in ipairs(names) do items[#items + 1] = { name = n, tensor = spore.full(shapes[n], 0.01) } end
items[#items + 1] = { name = "global_step", tensor = spore.zeros({ 1 }, "int32") }
items[#items + 1] = { name = "learning_rate", tensor = spore.full({}, 0.1) }
items[#items + 1] = { name = "momentum", tensor = spore.full({}, 0.9) }
for _, n in ipairs(names) do
  if trainable[n] then ntrain = ntrain + 1; items[#items + 1] = { name = "moments." .. n, tensor = spore.full(shapes[n], 0.001) } end
end
assert(ntrain == 161, "expected 161 trainable, got " .. ntrain)
spore.ckpt.write_raw(out, items)
-- OUT.tsv: the float32 tensors' names and dims (bench_ckpt.sh builds the peers' files from it)
local tsv = assert(io.open(out .. ".tsv", "w"))
for _, it in ipairs(items) do
  if it.tensor:dtype() == "float32" then tsv:write(it.name, "\t", table.concat(it.tensor:shape(), ","), "\n") end
end
tsv:close()
