-- ckpt_gen_sized.lua OUT MB — write a .ckpt of about MB megabytes with spore's own writer:
-- ResNet50's 267 network tensors (model zoo names and shapes, class_num 1001, about 102 MB)
-- repeated as copy<k>.<name> until the size is reached, so every size has ResNet50's mix
-- of small and big tensors. Also writes OUT.tsv: name<TAB>comma-separated dims, one line
-- per tensor (bench_ckpt.sh builds the peers' equivalent files from it).
package.path = (arg[0]:match("^(.-)[^/]*$") or "./") .. "../../lua/?.lua;" ..
  (arg[0]:match("^(.-)[^/]*$") or "./") .. "../../lua/?/init.lua;" .. package.path
local spore = require("spore")
local out, mb = assert(arg[1], "usage: ckpt_gen_sized.lua OUT MB"), assert(tonumber(arg[2]), "MB")

local names, shapes = {}, {}
local function add(n, s) names[#names + 1] = n; shapes[n] = s end
local function bn(p, c)
  add(p .. ".moving_mean", { c }); add(p .. ".moving_variance", { c }); add(p .. ".gamma", { c }); add(p .. ".beta", { c })
end
add("conv1.weight", { 64, 3, 7, 7 }); bn("bn1", 64)
local inc = 64
for L, spec in ipairs({ { 3, 64 }, { 4, 128 }, { 6, 256 }, { 3, 512 } }) do
  local n, c = spec[1], spec[2]
  for i = 0, n - 1 do
    local p = "layer" .. L .. "." .. i
    local cin = i == 0 and inc or c * 4
    add(p .. ".conv1.weight", { c, cin, 1, 1 }); bn(p .. ".bn1", c)
    add(p .. ".conv2.weight", { c, c, 3, 3 }); bn(p .. ".bn2", c)
    add(p .. ".conv3.weight", { c * 4, c, 1, 1 }); bn(p .. ".bn3", c * 4)
    if i == 0 then add(p .. ".down_sample_layer.0.weight", { c * 4, cin, 1, 1 }); bn(p .. ".down_sample_layer.1", c * 4) end
  end
  inc = c * 4
end
add("end_point.weight", { 1001, 2048 }); add("end_point.bias", { 1001 })

local items, bytes, k = {}, 0, 0
local tsv = assert(io.open(out .. ".tsv", "w"))
while bytes < mb * 1e6 do
  for _, n in ipairs(names) do
    local s = shapes[n]
    local numel = 1
    for _, d in ipairs(s) do numel = numel * d end
    if bytes >= mb * 1e6 then break end
    local name = ("copy%d.%s"):format(k, n)
    items[#items + 1] = { name = name, tensor = spore.full(s, 0.01) }
    tsv:write(name, "\t", table.concat(s, ","), "\n")
    bytes = bytes + numel * 4
  end
  k = k + 1
end
tsv:close()
spore.ckpt.write_raw(out, items)
