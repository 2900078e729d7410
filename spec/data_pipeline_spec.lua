-- data_pipeline_spec.lua — transforms against naive Lua loops (bilinear resize
-- with OpenCV INTER_LINEAR semantics), shuffling, drop_remainder, repeat, CIFAR.
local spore = require("spore")
local H = spec_helper
local data = spore.data
local V = data.vision

-- OpenCV INTER_LINEAR: half-pixel centres, clamp at the edges. img: flat HWC (1-based)
local function naive_resize(img, h, w, c, oh, ow)
  local out = {}
  for y = 0, oh - 1 do
    for x = 0, ow - 1 do
      local fy = (y + 0.5) * h / oh - 0.5
      local fx = (x + 0.5) * w / ow - 0.5
      local y0, x0 = math.floor(fy), math.floor(fx)
      local wy, wx = fy - y0, fx - x0
      local function px(yy, xx, k)
        yy = math.min(math.max(yy, 0), h - 1); xx = math.min(math.max(xx, 0), w - 1)
        return img[(yy * w + xx) * c + k + 1]
      end
      for k = 0, c - 1 do
        out[(y * ow + x) * c + k + 1] = (px(y0, x0, k) * (1 - wx) + px(y0, x0 + 1, k) * wx) * (1 - wy)
          + (px(y0 + 1, x0, k) * (1 - wx) + px(y0 + 1, x0 + 1, k) * wx) * wy
      end
    end
  end
  return out
end

local function labels_seq(n) return spore.arange(0, n, 1, "int32") end

describe("Resize (bilinear, OpenCV INTER_LINEAR)", function()
  it("matches a naive implementation on random images, up and down, 1 and 3 channels", function()
    spore.manual_seed(7)
    for _, case in ipairs({ { 28, 28, 1, 32, 32 }, { 7, 5, 3, 13, 4 }, { 32, 32, 3, 17, 9 }, { 1, 6, 1, 3, 10 }, { 9, 9, 3, 9, 9 } }) do
      local h, w, c, oh, ow = unpack(case)
      local imgs = spore.rand({ 3, h, w, c }, 0, 255)
      local ds = data.from_tensors(imgs, labels_seq(3), { batch = 3, shuffle = false, transforms = { V.Resize({ oh, ow }) } })
      local x = ds:batches()()
      assert.same({ 3, oh, ow, c }, x:shape())
      local maxd = 0
      for i = 1, 3 do
        local ref = naive_resize(imgs:select(1, i):flat(), h, w, c, oh, ow)
        local got = x:select(1, i):flat()
        maxd = math.max(maxd, H.max_abs_diff(ref, got) / 255)
      end
      assert.is_true(maxd < 1e-5, table.concat(case, "x") .. ": max diff " .. maxd)
    end
  end)

  it("Resize(n) resizes the shorter side, keeping the aspect ratio", function()
    local ds = data.from_tensors(spore.zeros({ 1, 20, 40, 3 }, "uint8"), labels_seq(1), { transforms = { V.Resize(10), V.HWC2CHW() } })
    assert.same({ 3, 10, 20 }, ds:item_shape())
  end)
end)

describe("other transforms", function()
  it("Rescale, Normalize (per channel), HWC2CHW and TypeCast", function()
    local imgs = spore.rand({ 2, 3, 4, 3 }, 0, 255)
    local ds = data.from_tensors(imgs, labels_seq(2), { batch = 2, shuffle = false,
      transforms = { V.Rescale(1 / 255, 0.5), V.Normalize({ 0.1, 0.2, 0.3 }, { 2, 4, 8 }), V.HWC2CHW(), V.TypeCast("float64") } })
    local x = ds:batches()()
    assert.same({ 2, 3, 3, 4 }, x:shape())
    assert.equal("float64", x:dtype())
    local mean, std = { 0.1, 0.2, 0.3 }, { 2, 4, 8 }
    local maxd = 0
    for n = 1, 2 do for yy = 1, 3 do for xx = 1, 4 do for c = 1, 3 do
      local v = (imgs:get({ n, yy, xx, c }) / 255 + 0.5 - mean[c]) / std[c]
      maxd = math.max(maxd, math.abs(v - x:get({ n, c, yy, xx })))
    end end end end
    assert.is_true(maxd < 1e-6, "max diff " .. maxd)
  end)

  it("RandomHorizontalFlip(1) mirrors, (0) keeps; RandomCrop keeps pixels of the padded image", function()
    local imgs = spore.rand({ 1, 4, 5, 1 }, 0, 255)
    local f1 = data.from_tensors(imgs, labels_seq(1), { transforms = { V.RandomHorizontalFlip(1) } }):batches()()
    local f0 = data.from_tensors(imgs, labels_seq(1), { transforms = { V.RandomHorizontalFlip(0) } }):batches()()
    for yy = 1, 4 do for xx = 1, 5 do
      assert.equal(imgs:get({ 1, yy, xx, 1 }), f1:get({ 1, yy, 6 - xx, 1 }))
      assert.equal(imgs:get({ 1, yy, xx, 1 }), f0:get({ 1, yy, xx, 1 }))
    end end
    -- crop the full size without padding: identity
    local c0 = data.from_tensors(imgs, labels_seq(1), { transforms = { V.RandomCrop({ 4, 5 }) } }):batches()()
    assert.equal(0, (c0:to("cpu") - imgs):abs():max())
    -- padded crop: every output pixel is 0 or equals a source pixel at a common offset
    local ds = data.from_tensors(imgs, labels_seq(1), { seed = 3, transforms = { V.RandomCrop({ 4, 5 }, 2) } })
    local offsets = {}
    for _ = 1, 20 do
      local x = ds:batches()()
      local found
      for dy = -2, 2 do for dx = -2, 2 do
        local ok = true
        for yy = 1, 4 do for xx = 1, 5 do
          local sy, sx = yy + dy, xx + dx
          local want = (sy >= 1 and sy <= 4 and sx >= 1 and sx <= 5) and imgs:get({ 1, sy, sx, 1 }) or 0
          if want ~= x:get({ 1, yy, xx, 1 }) then ok = false end
        end end
        if ok then found = dy .. "," .. dx end
      end end
      assert.is_truthy(found, "crop matches an offset of the padded image")
      offsets[found] = true
    end
    local n = 0
    for _ in pairs(offsets) do n = n + 1 end
    assert.is_true(n > 3, "random offsets vary")
  end)

  it("rejects bad transform lists with a message", function()
    local imgs = spore.zeros({ 1, 4, 4, 1 }, "uint8")
    assert.has_error(function() data.from_tensors(imgs, labels_seq(1), { transforms = { V.RandomCrop(9) } }) end)
    local ok, err = pcall(data.from_tensors, imgs, labels_seq(1), { transforms = { V.TypeCast("float16"), V.Rescale(1, 0) } })
    assert.is_false(ok); assert.matches("TypeCast must come last", err)
    ok, err = pcall(V.Resize, { 32, 32 }, "nearest")
    assert.is_false(ok); assert.matches("only bilinear", err)
  end)
end)

describe("batching", function()
  local function collect(ds)
    local seen, sizes = {}, {}
    for _, y in ds:batches() do
      sizes[#sizes + 1] = y:size(1)
      for i = 1, y:size(1) do seen[#seen + 1] = y[i] end
    end
    return seen, sizes
  end

  it("shuffle with a seed is a permutation, reproducible, and new each epoch", function()
    local n = 100
    local imgs = spore.zeros({ n, 2, 2 }, "uint8")
    local mk = function(seed) return data.from_tensors(imgs, labels_seq(n), { batch = 16, shuffle = true, seed = seed, transforms = {} }) end
    local a, b = mk(42), mk(42)
    local ea1, ea2 = collect(a), collect(a)
    local eb1 = collect(b)
    assert.same(ea1, eb1)
    local sorted = {}
    for i, v in ipairs(ea1) do sorted[i] = v end
    table.sort(sorted)
    for i = 1, n do assert.equal(i - 1, sorted[i]) end
    local moved = 0
    for i = 1, n do if ea1[i] ~= i - 1 then moved = moved + 1 end end
    assert.is_true(moved > 50)
    assert.are_not.same(ea1, ea2)
    assert.are_not.same(ea1, collect(mk(43)))
    local plain = collect(data.from_tensors(imgs, labels_seq(n), { batch = 16, shuffle = false, transforms = {} }))
    for i = 1, n do assert.equal(i - 1, plain[i]) end
  end)

  it("drop_remainder, repeat and num_samples", function()
    local imgs = spore.zeros({ 100, 2, 2 }, "uint8")
    local ds = data.from_tensors(imgs, labels_seq(100), { batch = 32, shuffle = false, transforms = {} })
    assert.equal(4, ds:num_batches())
    local _, sizes = collect(ds)
    assert.same({ 32, 32, 32, 4 }, sizes)
    ds = data.from_tensors(imgs, labels_seq(100), { batch = 32, drop_remainder = true, transforms = {} })
    assert.equal(3, ds:num_batches())
    _, sizes = collect(ds)
    assert.same({ 32, 32, 32 }, sizes)
    ds = data.from_tensors(imgs, labels_seq(100), { batch = 32, drop_remainder = true, ["repeat"] = 2, transforms = {} })
    assert.equal(6, ds:num_batches())
    local seen
    seen, sizes = collect(ds)
    assert.equal(6, #sizes)
    ds = data.from_tensors(imgs, labels_seq(100), { batch = 32, num_samples = 40, shuffle = false, transforms = {} })
    assert.equal(40, ds:size())
    seen, sizes = collect(ds)
    assert.same({ 32, 8 }, sizes)
    assert.equal(39, seen[40])
  end)
end)

describe("CIFAR-10 binary batches", function()
  it("decodes records (CHW on disk → HWC) and builds the test split; errors name the file", function()
    local tmp = H.tmpdir()
    local f = io.open(tmp .. "/test_batch.bin", "wb")
    local recs = {}
    for r = 1, 3 do
      local px = {}
      for i = 0, 3071 do px[#px + 1] = string.char((i + r * 7) % 256) end
      recs[#recs + 1] = string.char(r + 2) .. table.concat(px)
    end
    f:write(table.concat(recs))
    f:close()
    local ds = data.cifar10(tmp, { split = "test", batch = 2, shuffle = false })
    assert.equal(3, ds:size())
    assert.same({ 3, 32, 32 }, ds:item_shape())
    local x, y = ds:batches()()
    assert.same({ 3, 4 }, { y[1], y[2] })
    -- pixel (c=2, y=1, x=3) of record 1 (1-based) = byte c*1024 + y*32 + x (0-based) on disk
    local expect = ((1 * 1024 + 0 * 32 + 2) + 7) % 256
    assert.is_true(math.abs(x:get({ 1, 2, 1, 3 }) - expect / 255) < 1e-6)
    f = io.open(tmp .. "/test_batch.bin", "ab"); f:write("x"); f:close()
    local ok, err = pcall(data.cifar10, tmp, { split = "test" })
    assert.is_false(ok)
    assert.is_truthy(err:find(tmp .. "/test_batch.bin", 1, true))
    assert.is_truthy(err:find("whole number of 3073-byte records", 1, true))
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)

describe("labels", function()
  it("label_dtype and label_transforms = {TypeCast} choose the label dtype", function()
    local imgs = spore.zeros({ 4, 2, 2 }, "uint8")
    local labs = spore.tensor({ 1, 2, 3, 250 }, "uint8")
    local _, y = data.from_tensors(imgs, labs, { shuffle = false, label_transforms = { V.TypeCast("int64") } }):batches()()
    assert.equal("int64", y:dtype())
    assert.same({ 1, 2, 3, 250 }, y:flat())
    _, y = data.from_tensors(imgs, labs, { shuffle = false, label_dtype = "float32" }):batches()()
    assert.equal("float32", y:dtype())
    assert.has_error(function() data.from_tensors(imgs, labs, { label_transforms = { V.Rescale(1, 0) } }) end)
  end)

  it("cifar100 reads the fine label of (coarse, fine) records", function()
    local tmp = H.tmpdir()
    local f = io.open(tmp .. "/test.bin", "wb")
    f:write(string.char(3, 77) .. string.rep("\7", 3072), string.char(1, 99) .. string.rep("\9", 3072))
    f:close()
    local ds = data.cifar100(tmp, { split = "test", shuffle = false })
    local x, y = ds:batches()()
    assert.same({ 77, 99 }, y:flat())
    assert.is_true(math.abs(x:get({ 2, 3, 32, 32 }) - 9 / 255) < 1e-7)
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
