-- nn_lenet_fixture_spec.lua — the real MindSpore LeNet checkpoint in ../shared/fixtures,
-- loaded into spore.models.lenet5{} by a minimal private protobuf decoder (the real loader
-- is spore.ckpt's job), run on the first 100 t10k images through the tutorial pipeline
-- (bilinear half-pixel resize 28→32, /255, (x-0.1307)/0.3081), gives the independent
-- reference's predictions and logits (lenet_t10k_first100.txt).
local spore = require("spore")
local ffi = require("ffi")
local H = spec_helper

---------------------------------------------------------------- minimal .ckpt decoder
local function varint(s, i)
  local v, mul = 0, 1
  while true do
    local b = s:byte(i); i = i + 1
    v = v + (b % 128) * mul
    if b < 128 then return v, i end
    mul = mul * 128
  end
end
local function fields(s, i, j, cb)
  while i <= j do
    local key; key, i = varint(s, i)
    local f, wt = math.floor(key / 8), key % 8
    if wt == 0 then local v; v, i = varint(s, i); cb(f, wt, v)
    elseif wt == 2 then local n; n, i = varint(s, i); cb(f, wt, i, i + n - 1); i = i + n
    elseif wt == 5 then i = i + 4 elseif wt == 1 then i = i + 8
    else error("bad wire type " .. wt) end
  end
end
local function read_ckpt(path)
  local fh = assert(io.open(path, "rb")); local s = fh:read("*a"); fh:close()
  local out = {}
  fields(s, 1, #s, function(f, wt, a, b)
    if f ~= 1 or wt ~= 2 then return end
    local e = { dims = {} }
    fields(s, a, b, function(f2, wt2, a2, b2)
      if f2 == 1 then e.name = s:sub(a2, b2)
      elseif f2 == 2 then
        fields(s, a2, b2, function(f3, wt3, a3, b3)
          if f3 == 1 then
            if wt3 == 0 then e.dims[#e.dims + 1] = a3
            else local k = a3; while k <= b3 do local v; v, k = varint(s, k); e.dims[#e.dims + 1] = v end end
          elseif f3 == 2 then e.type = s:sub(a3, b3)
          elseif f3 == 3 then e.data = s:sub(a3, b3) end
        end)
      end
    end)
    out[#out + 1] = e
  end)
  return out
end

---------------------------------------------------------------- idx.gz reader + pipeline
local function gunzip(path)
  local p = assert(io.popen("gzip -dc '" .. path .. "'", "r"))
  local s = p:read("*a")
  p:close()
  return s
end
local function be32(s, i) local a, b, c, d = s:byte(i, i + 3); return ((a * 256 + b) * 256 + c) * 256 + d end

-- OpenCV INTER_LINEAR: src = (dst + 0.5) * scale - 0.5, clamped at the edges.
local function coeffs(dst_n, src_n)
  local scale, r = src_n / dst_n, {}
  for d = 0, dst_n - 1 do
    local f = (d + 0.5) * scale - 0.5
    local i0 = math.floor(f)
    local w = f - i0
    if i0 < 0 then i0, w = 0, 0 end
    if i0 >= src_n - 1 then i0, w = src_n - 1, 0 end
    r[d] = { i0, math.min(i0 + 1, src_n - 1), w }
  end
  return r
end

local function pipeline(images, first, count)
  local x = spore.empty({ count, 1, 32, 32 })
  local p = x:ptr()
  local cy, cx = coeffs(32, 28), coeffs(32, 28)
  for n = 0, count - 1 do
    local base = 16 + (first + n) * 784
    for oy = 0, 31 do
      local y0, y1, wy = cy[oy][1], cy[oy][2], cy[oy][3]
      for ox = 0, 31 do
        local x0, x1, wx = cx[ox][1], cx[ox][2], cx[ox][3]
        local r0, r1 = base + y0 * 28 + 1, base + y1 * 28 + 1
        local v = (1 - wy) * ((1 - wx) * images:byte(r0 + x0) + wx * images:byte(r0 + x1))
          + wy * ((1 - wx) * images:byte(r1 + x0) + wx * images:byte(r1 + x1))
        p[n * 1024 + oy * 32 + ox] = (v / 255 - 0.1307) / 0.3081
      end
    end
  end
  return x
end

describe("LeNet5 with the real MindSpore checkpoint", function()
  local ckpt, e1 = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
  local ref, e2 = H.fixture("mindspore/lenet_t10k_first100.txt")
  local imgs, e3 = H.fixture("mnist/t10k-images-idx3-ubyte.gz")
  local labs, e4 = H.fixture("mnist/t10k-labels-idx1-ubyte.gz")
  if not (ckpt and ref and imgs and labs) then
    pending("SKIPPED (fixture missing): " .. (e1 or e2 or e3 or e4))
    return
  end

  local net = spore.models.lenet5 { num_class = 10, num_channel = 1 }
  local entries = read_ckpt(ckpt)

  it("decodes the checkpoint: LeNet names and shapes match the module's", function()
    local byname = {}
    for _, e in ipairs(entries) do byname[e.name] = e end
    local pn = net:parameters_and_names()
    assert.equal(8, #pn)
    for _, np in ipairs(pn) do
      local e = byname[np[1]]
      assert.is_not_nil(e, "checkpoint lacks " .. np[1])
      assert.same(np[2].data:shape(), e.dims)
      assert.equal("Float32", e.type)
    end
    -- the optimizer state follows the weights: learning_rate, momentum (dims [0]), moments.*
    assert.equal("learning_rate", entries[9].name)
    assert.equal("momentum", entries[10].name)
    assert.equal("moments.conv1.weight", entries[11].name)
  end)

  it("gives the reference's predictions and logits on t10k images 0..99", function()
    for _, np in ipairs(net:parameters_and_names()) do
      for _, e in ipairs(entries) do
        if e.name == np[1] then
          local t = spore.from_pointer(e.data, #e.data, e.dims, "float32")
          np[2].data:copy_(t)
        end
      end
    end
    net:eval()
    local images, labels = gunzip(imgs), gunzip(labs)
    assert.equal(2051, be32(images, 1))
    assert.equal(2049, be32(labels, 1))
    local x = pipeline(images, 0, 100)
    local logits = net(x)
    local lp = logits:to("cpu"):ptr()
    local n, agree, maxdiff, correct = 0, 0, 0, 0
    for line in io.lines(ref) do
      if not line:match("^#") and line:match("%S") then
        local f = {}
        for w in line:gmatch("%S+") do f[#f + 1] = tonumber(w) end
        local idx, label, pred = f[1], f[2], f[3]
        assert.equal(label, labels:byte(9 + idx), "label of image " .. idx)
        local best, bi = -math.huge, -1
        for c = 0, 9 do
          local v = lp[idx * 10 + c]
          if v > best then best, bi = v, c end
          maxdiff = math.max(maxdiff, math.abs(v - f[4 + c]))
        end
        if bi == pred then agree = agree + 1 end
        if bi == label then correct = correct + 1 end
        n = n + 1
      end
    end
    assert.equal(100, n)
    assert.equal(100, agree)
    -- the reference is float64; spore computes in float32 (README: ~1e-4 expected)
    assert.is_true(maxdiff < 1e-4, ("max |logit diff| = %g"):format(maxdiff))
    print(("\n  lenet fixture: 100/100 predictions agree, %d/100 correct, max |logit diff| %.2e"):format(correct, maxdiff))
  end)

  it("classifies the whole t10k set at 0.9638 +- 0.002 (README's reference figure)", function()
    local images, labels = gunzip(imgs), gunzip(labs)
    local n = be32(images, 5)
    assert.equal(10000, n)
    local correct = 0
    for first = 0, n - 1, 500 do
      local logits = net(pipeline(images, first, 500))
      local lp = logits:to("cpu"):ptr()
      for i = 0, 499 do
        local best, bi = -math.huge, -1
        for c = 0, 9 do if lp[i * 10 + c] > best then best, bi = lp[i * 10 + c], c end end
        if bi == labels:byte(9 + first + i) then correct = correct + 1 end
      end
    end
    local acc = correct / n
    print(("\n  lenet fixture: t10k accuracy %.4f"):format(acc))
    assert.is_true(math.abs(acc - 0.9638) <= 0.002, ("accuracy %.4f"):format(acc))
  end)

  -- every bf16 microkernel this CPU runs (amx, avx512, portable: spore.config().bf16_kernels)
  for _, kern in ipairs(spore.config().bf16_kernels) do
    it(("in bfloat16 (amp_level O2, %s kernel) classifies t10k within 0.005 of float32's 0.9638"):format(kern), function()
      local images, labels = gunzip(imgs), gunzip(labs)
      local n = be32(images, 5)
      local def = spore.config().bf16_kernel
      spore.config { bf16_kernel = kern }
      spore.train.auto_mixed_precision(net, "O2")
      local correct = 0
      local ok, err = pcall(function()
        for first = 0, n - 1, 500 do
          local logits = net(pipeline(images, first, 500))
          local lp = logits:to("cpu"):ptr()
          for i = 0, 499 do
            local best, bi = -math.huge, -1
            for c = 0, 9 do if lp[i * 10 + c] > best then best, bi = lp[i * 10 + c], c end end
            if bi == labels:byte(9 + first + i) then correct = correct + 1 end
          end
        end
      end)
      spore.train.auto_mixed_precision(net, "O0")
      spore.config { bf16_kernel = def }
      assert(ok, err)
      local acc = correct / n
      print(("\n  lenet fixture: t10k accuracy in bfloat16 (%s) %.4f"):format(kern, acc))
      assert.is_true(math.abs(acc - 0.9638) <= 0.005, ("bf16 (%s) accuracy %.4f"):format(kern, acc))
    end)
  end
end)
