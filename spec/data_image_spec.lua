-- data_image_spec.lua — image folders, the MindSpore transforms and the model zoo pipelines
-- against MindSpore's own outputs (spec/fixtures/zoo, recorded by
-- scripts/gen/gen_zoo_pipeline.py), CIFAR-10's binary layout, sharding as MindSpore's
-- DistributedSampler, corrupt images, .npy, NCHW batches, options checking, and the ResNets
-- at small input sizes.
local spore = require("spore")
local H = spec_helper
local data, V = spore.data, spore.data.vision
local Z = H.root .. "/spec/fixtures/zoo/"

local function flat(t) return t:to("float64"):contiguous():flat() end

-- max |a - b| in pixel levels: normalised values are scaled back by std[c] (CHW, c over dim 1)
local function level_diff(a, b, std, hw)
  local fa, fb = flat(a), flat(b)
  assert.equal(#fb, #fa)
  local m = 0
  for i = 1, #fa do
    local c = math.floor((i - 1) / hw) % #std + 1
    local d = math.abs(fa[i] - fb[i]) * std[c]
    if d > m then m = d end
  end
  return m
end

local function one_file(path, transforms)
  local ds = data.image_files({ path }, { 0 }, { transforms = transforms, batch = 1, shuffle = false })
  return (ds:batches()())
end

local function image_batch(img, transforms, opts)
  local sh = img:shape()
  local o = { transforms = transforms, batch = 1, shuffle = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return data.from_tensors(img:reshape({ 1, sh[1], sh[2], sh[3] }), spore.tensor({ 0 }, "int32"), o)
end

local function mkfolder(layout)
  local dir = H.tmpdir()
  for cls, files in pairs(layout) do
    os.execute("mkdir -p '" .. dir .. "/" .. cls .. "'")
    for name, src in pairs(files) do
      if src == "" then
        io.open(dir .. "/" .. cls .. "/" .. name, "wb"):close()
      elseif type(src) == "table" then -- {path, bytes}: the first bytes of a file
        local f = io.open(src[1], "rb"); local s = f:read("*a"); f:close()
        f = io.open(dir .. "/" .. cls .. "/" .. name, "wb"); f:write(s:sub(1, src[2])); f:close()
      elseif src:sub(1, 1) == "=" then -- literal content
        local f = io.open(dir .. "/" .. cls .. "/" .. name, "wb"); f:write(src:sub(2)); f:close()
      else
        os.execute("cp '" .. src .. "' '" .. dir .. "/" .. cls .. "/" .. name .. "'")
      end
    end
  end
  return dir
end

local function rel(files, dir)
  local r = {}
  for i, f in ipairs(files) do r[i] = f:sub(#dir + 2) end
  return r
end

describe("zoo pipelines equal MindSpore's outputs (deterministic chains)", function()
  local IM_STD = { 0.229 * 255, 0.224 * 255, 0.225 * 255 }

  it("imagenet eval: Decode, Resize(256), CenterCrop(224) of a 500x375 JPEG within 1 level", function()
    local x = one_file(Z .. "a.jpg", { V.Decode(), V.Resize(256), V.CenterCrop(224) })
    assert.same({ 1, 224, 224, 3 }, x:shape())
    assert.equal("uint8", x:dtype())
    local d = level_diff(x:select(1, 1), data.load_npy(Z .. "a_eval224_u8.npy"), { 1 }, 1)
    print(("\n  zoo imagenet eval 224 (a.jpg, before Normalize): max |spore - MindSpore| = %g levels"):format(d))
    assert.is_true(d <= 1, "max diff " .. d)
    -- the full chain at 224 is that golden normalised and laid out CHW
    local full = one_file(Z .. "a.jpg", data.zoo_pipeline("imagenet", { image_size = 224 }))
    assert.same({ 1, 3, 224, 224 }, full:shape())
    local ref = image_batch(data.load_npy(Z .. "a_eval224_u8.npy"), {
      V.Normalize(require("spore.data.zoo").IMAGENET_MEAN, IM_STD), V.HWC2CHW() }):batches()()
    local d2 = level_diff(full, ref, IM_STD, 224 * 224)
    assert.is_true(d2 <= 1 + 1e-4, "max diff " .. d2)
  end)

  it("imagenet eval chain (Resize 73, CenterCrop 64, Normalize, HWC2CHW) on PNG, grayscale and progressive JPEG", function()
    local worst = 0
    for _, n in ipairs({ "b.png", "g.jpg", "p.jpg" }) do
      local x = one_file(Z .. n, data.zoo_pipeline("imagenet", { image_size = 64, eval_resize = 73 }))
      assert.same({ 1, 3, 64, 64 }, x:shape())
      local d = level_diff(x, data.load_npy(Z .. n:sub(1, 1) .. "_eval64.npy"), IM_STD, 64 * 64)
      worst = math.max(worst, d)
      assert.is_true(d <= 1 + 1e-4, n .. ": max diff " .. d .. " levels")
    end
    print(("\n  zoo imagenet eval 64 (PNG, gray JPEG, progressive JPEG): max |spore - MindSpore| = %.3g levels"):format(worst))
  end)

  it("cifar10 eval chain on Cifar10Dataset(usage='test') within 1 level, labels in file order", function()
    local ds = data.Cifar10Dataset(Z .. "cifar", { usage = "test", shuffle = false, batch = 10,
      transforms = data.zoo_pipeline("cifar10", { image_size = 28 }) })
    local x, y = ds:batches()()
    assert.same({ 10, 3, 28, 28 }, x:shape())
    local d = level_diff(x, data.load_npy(Z .. "cifar_eval28.npy"), { 0.2023 * 255, 0.1994 * 255, 0.2010 * 255 }, 28 * 28)
    print(("\n  zoo cifar10 eval 28: max |spore - MindSpore| = %.3g levels"):format(d))
    assert.is_true(d <= 1 + 1e-4, "max diff " .. d)
    local man = require("spore.json").decode(io.open(Z .. "manifest.json"):read("*a"))
    assert.same(man.cifar_test_labels, y:totable())
  end)

  it("RandomCrop's padding forms and modes, CenterCrop (odd offsets, padding), Resize(short) exactly", function()
    local small = data.load_npy(Z .. "small_12x10.npy")
    local function det(list) return image_batch(small, list):batches()():select(1, 1) end
    local cases = {
      { "pad_constant.npy", { V.RandomCrop({ 18, 14 }, { 1, 2, 3, 4 }, false, { 10, 20, 30 }) } },
      { "pad_edge.npy", { V.RandomCrop({ 18, 16 }, 3, { padding_mode = "edge" }) } },
      { "pad_reflect.npy", { V.RandomCrop({ 18, 14 }, { 2, 3 }, { padding_mode = "reflect" }) } },
      { "pad_symmetric.npy", { V.RandomCrop({ 17, 15 }, { 3, 1, 2, 4 }, { padding_mode = "symmetric" }) } },
      { "center_big.npy", { V.CenterCrop({ 20, 16 }) } },
      { "center_odd.npy", { V.CenterCrop({ 5, 7 }) } },
    }
    for _, c in ipairs(cases) do
      local got, want = det(c[2]), data.load_npy(Z .. c[1])
      assert.same(want:shape(), got:shape())
      assert.equal("uint8", got:dtype())
      assert.is_true(level_diff(got, want, { 1 }, 1) == 0, c[1])
    end
    local b = data.decode_image(Z .. "b.png")
    local r = image_batch(b, { V.Resize(7) }):batches()():select(1, 1)
    assert.same(data.load_npy(Z .. "resize_short.npy"):shape(), r:shape())
    assert.is_true(level_diff(r, data.load_npy(Z .. "resize_short.npy"), { 1 }, 1) <= 1)
  end)

  it("RandomCrop pad_if_needed pads the shortfall on both sides, then crops at a random offset", function()
    local small = data.load_npy(Z .. "small_12x10.npy")
    local s = flat(small)
    local seen = {}
    local ds = image_batch(small, { V.RandomCrop({ 15, 13 }, { pad_if_needed = true }) }, { ["repeat"] = 60, seed = 2 })
    for x in ds:batches() do
      -- find the image's top-left corner in the window: padded by 3 rows / 3 cols each side
      local f = flat(x)
      local found
      for oy = 0, 6 do
        for ox = 0, 6 do
          local ok = true
          for yy = 0, 14 do
            for xx = 0, 12 do
              local sy, sx = yy + oy - 3, xx + ox - 3
              local v = (sy >= 0 and sy < 12 and sx >= 0 and sx < 10) and s[(sy * 10 + sx) * 3 + 1] or 0
              if f[(yy * 13 + xx) * 3 + 1] ~= v then ok = false break end
            end
            if not ok then break end
          end
          if ok then found = oy * 7 + ox end
        end
      end
      assert.is_not_nil(found)
      seen[found] = true
    end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.is_true(n > 15, "offsets seen: " .. n)
  end)
end)

describe("random chains: statistics against MindSpore, fixed-seed golden", function()
  local function mean_of(img, list, n, seed)
    local ds = image_batch(img, list, { ["repeat"] = n, seed = seed })
    local sum
    for x in ds:batches() do
      local f = x:to("float64")
      sum = sum and sum:add(f) or f:clone()
    end
    return flat(sum:div(n))
  end
  local function zcheck(m, gm, gs, n, both)
    local a, s = flat(data.load_npy(gm)), flat(data.load_npy(gs))
    local worst, over = 0, 0
    for i = 1, #m do
      local se = (both and math.sqrt(2) or 1) * s[i] / math.sqrt(n) + 1e-3
      local z = math.abs(m[i] - a[i]) / se
      worst = math.max(worst, z)
      if z > 4 then over = over + 1 end
    end
    return worst, over, #m
  end

  it("imagenet train chain (RandomResizedCrop, flip): the mean image of 1000 draws matches MindSpore's", function()
    local Zm = require("spore.data.zoo")
    local img = data.decode_image(Z .. "a.jpg")
    local m = mean_of(img, { V.RandomResizedCrop(32, { 0.08, 1.0 }, { 0.75, 1.333 }), V.RandomHorizontalFlip(0.5),
      V.Normalize(Zm.IMAGENET_MEAN, Zm.IMAGENET_STD), V.HWC2CHW() }, 1000, 5)
    local worst, over, n = zcheck(m, Z .. "a_train32_mean.npy", Z .. "a_train32_std.npy", 1000, true)
    print(("\n  imagenet train chain, mean of 1000 draws vs MindSpore's 1000: worst |z| %.2f, %d of %d pixels over 4")
      :format(worst, over, n))
    assert.is_true(worst < 6 and over <= n / 200, "worst z " .. worst .. ", over 4: " .. over)
    -- and it is not the eval chain's mean (the check can fail)
    local wrong = mean_of(img, { V.Resize({ 32, 32 }), V.Normalize(Zm.IMAGENET_MEAN, Zm.IMAGENET_STD), V.HWC2CHW() }, 1, 5)
    local w2 = zcheck(wrong, Z .. "a_train32_mean.npy", Z .. "a_train32_std.npy", 1000, true)
    assert.is_true(w2 > 6)
  end)

  it("cifar10 train chain (RandomCrop pad 4, flip): the mean of 1000 draws matches the exact mean", function()
    local rec0 = data.Cifar10Dataset(Z .. "cifar", { usage = "test", shuffle = false, transforms = {} }):sample(1)
    local m = mean_of(rec0:contiguous(), data.zoo_pipeline("cifar10", { train = true, image_size = 32 }), 1000, 9)
    local worst, over, n = zcheck(m, Z .. "cifar_train_mean.npy", Z .. "cifar_train_std.npy", 1000, false)
    print(("\n  cifar10 train chain, mean of 1000 draws vs the exact mean: worst |z| %.2f, %d of %d over 4"):format(worst, over, n))
    assert.is_true(worst < 6 and over <= n / 200, "worst z " .. worst)
  end)

  it("the loader's fixed-seed output equals the committed golden, with 1 or 3 threads", function()
    local files = { Z .. "a.jpg", Z .. "b.png", Z .. "g.jpg", Z .. "p.jpg" }
    local gold = flat(data.load_npy(Z .. "spore_seed7_train32.npy"))
    for _, threads in ipairs({ 1, 3 }) do
      local ds = data.image_files(files, { 0, 1, 2, 3 }, { batch = 4, shuffle = false, seed = 7, num_parallel_workers = threads,
        transforms = data.zoo_pipeline("imagenet", { train = true, image_size = 32 }) })
      local x = flat((ds:batches()()))
      local m = 0
      for i = 1, #x do m = math.max(m, math.abs(x[i] - gold[i])) end
      assert.equal(0, m)
    end
    -- another seed gives other crops
    local ds = data.image_files(files, { 0, 1, 2, 3 }, { batch = 4, shuffle = false, seed = 8,
      transforms = data.zoo_pipeline("imagenet", { train = true, image_size = 32 }) })
    local x = flat((ds:batches()()))
    local m = 0
    for i = 1, #x do m = math.max(m, math.abs(x[i] - gold[i])) end
    assert.is_true(m > 0.1)
  end)
end)

describe("ImageFolderDataset", function()
  local layout = {
    a = { ["img2.jpg"] = Z .. "g.jpg", ["img10.jpg"] = Z .. "g.jpg", ["img1.jpg"] = Z .. "g.jpg", ["img3.jpg"] = Z .. "g.jpg" },
    b = { ["img2.jpg"] = Z .. "g.jpg", ["img10.jpg"] = Z .. "g.jpg", ["img1.jpg"] = Z .. "g.jpg", ["x.PNG"] = Z .. "b.png" },
    c = { ["img2.jpg"] = Z .. "g.jpg", ["img10.jpg"] = Z .. "g.jpg", ["img1.jpg"] = Z .. "g.jpg", ["img3.jpg"] = Z .. "g.jpg" },
  }
  local dir = mkfolder(layout)
  os.execute("touch '" .. dir .. "/README'") -- a file beside the class folders is not a class
  local T = { V.Decode(), V.Resize({ 8, 8 }) }

  it("reads sorted classes and sorted file names (as MindSpore), labels by position", function()
    local ds = data.ImageFolderDataset(dir, { transforms = T, shuffle = false })
    assert.same({ "a/img1.jpg", "a/img10.jpg", "a/img2.jpg", "a/img3.jpg", "b/img1.jpg", "b/img10.jpg", "b/img2.jpg",
      "b/x.PNG", "c/img1.jpg", "c/img10.jpg", "c/img2.jpg", "c/img3.jpg" }, rel(ds.files, dir))
    assert.same({ "a", "b", "c" }, ds.classes)
    assert.same({ a = 0, b = 1, c = 2 }, ds:get_class_indexing())
    local _, y = ds:batches()()
    assert.same({ 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2 }, y:totable())
    assert.equal(12, ds:size())
  end)

  it("extensions are case-sensitive suffixes; class_indexing picks folders and labels", function()
    local ds = data.ImageFolderDataset(dir, { transforms = T, extensions = { ".PNG" } })
    assert.same({ "b/x.PNG" }, rel(ds.files, dir))
    local ds2 = data.ImageFolderDataset(dir, { transforms = T, shuffle = false, class_indexing = { c = 5, a = 1 } })
    assert.equal(8, ds2:size())
    local _, y = ds2:batches()()
    assert.same({ 1, 1, 1, 1, 5, 5, 5, 5 }, y:totable())
    assert.has_error(function() data.ImageFolderDataset(dir, { transforms = T, class_indexing = { z = 0 } }) end)
  end)

  it("shards as MindSpore's DistributedSampler: positions s, s+n, ... wrapping (recorded from MindSpore 2.10)", function()
    -- MindSpore, 12 files, num_shards=5, shuffle=False: shard s → positions s, s+5, s+10 (mod 12)
    local expect = { { 1, 6, 11 }, { 2, 7, 12 }, { 3, 8, 1 }, { 4, 9, 2 }, { 5, 10, 3 } }
    local all = data.ImageFolderDataset(dir, { transforms = T, shuffle = false })
    for s = 0, 4 do
      local ds = data.ImageFolderDataset(dir, { transforms = T, shuffle = false, num_shards = 5, shard_id = s, batch = 3 })
      assert.equal(3, ds:size())
      local _, y = ds:batches()()
      local want = {}
      for i, p in ipairs(expect[s + 1]) do want[i] = all._labels[p] end
      assert.same(want, y:totable())
    end
    -- with shuffle the shards of one pass are disjoint and cover every file
    local seen = {}
    for s = 0, 1 do
      local ds = data.ImageFolderDataset(dir, { transforms = { V.Decode(), V.Resize({ 4, 4 }) }, shuffle = true, seed = 3,
        num_shards = 2, shard_id = s, batch = 6 })
      ds:_new_pass()
      for k = 0, 5 do
        local f = tonumber(ds._order[k])
        assert.is_nil(seen[f]); seen[f] = true
      end
    end
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(12, n)
    local ok, e = pcall(data.ImageFolderDataset, dir, { transforms = T, num_shards = 2 })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("num_shards and shard_id must be given together", 1, true))
  end)

  it("split(sizes) partitions the files (fractions, seeded), as MindSpore's Dataset.split", function()
    local ds = data.ImageFolderDataset(dir, { transforms = T, seed = 4 })
    local tr, va = ds:split({ 0.75, 0.25 })
    assert.equal(9, tr:size())
    assert.equal(3, va:size())
    local seen = {}
    for _, d in ipairs({ tr, va }) do
      for _, f in ipairs(d.files) do assert.is_nil(seen[f]); seen[f] = true end
    end
    assert.has_error(function() ds:split({ 0.5, 0.6 }) end)
  end)

  it("checks its options: nearest name, MindSpore's unimplemented ones refused, decode rules", function()
    local ok, e = pcall(data.ImageFolderDataset, dir, { transforms = T, shufle = true })
    assert.is_false(ok)
    assert.truthy(tostring(e):find("unknown option 'shufle' (did you mean 'shuffle'?)", 1, true))
    ok, e = pcall(data.ImageFolderDataset, dir, { transforms = T, decrypt = function() end })
    assert.truthy(tostring(e):find("option 'decrypt' is MindSpore's, but spore does not implement it", 1, true))
    ok, e = pcall(data.ImageFolderDataset, dir, { transforms = { V.Resize({ 8, 8 }) } })
    assert.truthy(tostring(e):find("decode = false", 1, true))
    ok, e = pcall(data.ImageFolderDataset, dir, { transforms = { V.Decode(), V.Resize(8) } })
    assert.truthy(tostring(e):find("varying sizes", 1, true))
    ok = pcall(data.ImageFolderDataset, dir, { decode = true, transforms = { V.Resize({ 8, 8 }) } })
    assert.is_true(ok)
    ok, e = pcall(data.ImageFolderDataset, dir .. "/nope", { transforms = T })
    assert.truthy(tostring(e):find("is not a readable directory", 1, true))
  end)

  it("a corrupt image: a one-line error naming the file; skip_bad_images skips it and counts", function()
    local bad = mkfolder({
      ok = { ["1.jpg"] = Z .. "g.jpg", ["2.png"] = Z .. "b.png" },
      broken = { ["empty.jpg"] = "", ["trunc.jpg"] = { Z .. "a.jpg", 600 }, ["magic.jpg"] = "=GIF89a not an image",
        ["3.jpg"] = Z .. "p.jpg" },
    })
    local ds = data.ImageFolderDataset(bad, { transforms = T, shuffle = false, batch = 2 })
    local ok, e = pcall(function() for _ in ds:batches() do end end)
    assert.is_false(ok)
    e = tostring(e)
    assert.is_nil(e:find("\n"))
    assert.truthy(e:find(bad .. "/broken/", 1, true), e)
    local sk = data.ImageFolderDataset(bad, { transforms = T, shuffle = false, batch = 2, skip_bad_images = true })
    local n = 0
    for x in sk:batches() do n = n + x:size(1) end
    assert.equal(3, n)
    assert.equal(3, sk.bad_images)
  end)
end)

describe("CIFAR-10 binary release and tensors in and out", function()
  it("Cifar10Dataset usage train / test / all reads data_batch_1..5 then test_batch", function()
    local tr = data.Cifar10Dataset(Z .. "cifar", { usage = "train", shuffle = false })
    local te = data.Cifar10Dataset(Z .. "cifar", { usage = "test", shuffle = false })
    local all = data.Cifar10Dataset(Z .. "cifar", { usage = "all", shuffle = false, batch = 64 })
    assert.equal(25, tr:size())
    assert.equal(10, te:size())
    assert.equal(35, all:size())
    local _, y = all:batches()()
    local _, a = tr:sample(25)
    local _, b = te:sample(1)
    assert.equal(a, y:totable()[25])
    assert.equal(b, y:totable()[26])
    assert.has_error(function() data.Cifar10Dataset(Z .. "cifar", { usage = "val" }) end)
    local ok, e = pcall(data.Cifar10Dataset, Z .. "cifar", { usgae = "test" })
    assert.truthy(tostring(e):find("did you mean 'usage'", 1, true))
    ok, e = pcall(data.MnistDataset, Z .. "cifar", { sampler = {} })
    assert.truthy(tostring(e):find("'sampler' is MindSpore's", 1, true))
  end)

  it("from_tensors takes an NCHW float batch as it is, and HWC images through transforms", function()
    spore.manual_seed(3)
    local x = spore.randn({ 5, 3, 7, 9 })
    local ds = data.from_tensors(x, spore.arange(0, 5, 1, "int32"), { batch = 5, shuffle = false })
    assert.equal("NCHW", ds.layout)
    local b = ds:batches()()
    assert.same({ 5, 3, 7, 9 }, b:shape())
    local fa, fb = flat(x), flat(b)
    for i = 1, #fa do assert.equal(fa[i], fb[i]) end
    assert.has_error(function()
      data.from_tensors(x, spore.arange(0, 5, 1, "int32"), { transforms = { V.HWC2CHW() } })
    end)
    local hwc = data.from_tensors(spore.rand({ 2, 4, 6, 3 }), spore.arange(0, 2, 1, "int32"),
      { batch = 2, transforms = { V.HWC2CHW() } })
    assert.same({ 2, 3, 4, 6 }, hwc:batches()():shape())
  end)

  it("save_npy / load_npy round-trip; MindSpore's npy goldens load with their dtype", function()
    local d = H.tmpdir()
    local t = spore.randn({ 2, 3, 4 })
    data.save_npy(d .. "/t.npy", t)
    local u = data.load_npy(d .. "/t.npy")
    assert.same({ 2, 3, 4 }, u:shape())
    local fa, fb = flat(t), flat(u)
    for i = 1, #fa do assert.equal(fa[i], fb[i]) end
    assert.equal("uint8", data.load_npy(Z .. "a_eval224_u8.npy"):dtype())
    assert.has_error(function() data.load_npy(Z .. "a.jpg") end)
  end)
end)

describe("ResNets at any input size >= 32", function()
  local function check(name, net, size)
    local y = net(spore.randn({ 2, 3, size, size }):to(net:device()))
    assert.same({ 2, 7 }, y:shape(), name .. " at " .. size)
    local f = flat(y)
    for i = 1, #f do assert.is_true(f[i] == f[i]) end
  end
  it("resnet18 gives [N, classes] logits at 32, 33 and 64", function()
    spore.manual_seed(1)
    local net = spore.models.resnet18 { class_num = 7 }
    net:eval()
    for _, s in ipairs({ 32, 33, 64 }) do check("resnet18", net, s) end
  end)
end)

describe("ResNets at small sizes #slow", function()
  it("resnet34 at 48 and resnet50 at 32 give [N, classes] logits", function()
    spore.manual_seed(1)
    local n34 = spore.models.resnet34 { class_num = 7 }
    n34:eval()
    assert.same({ 2, 7 }, n34(spore.randn({ 2, 3, 48, 48 }):to(n34:device())):shape())
    local n50 = spore.models.resnet50 { class_num = 7 }
    n50:eval()
    assert.same({ 2, 7 }, n50(spore.randn({ 2, 3, 32, 32 }):to(n50:device())):shape())
  end)
end)

describe("scripts on an image folder (finetune.lua → eval.lua → predict.lua, fresh processes)", function()
  it("fine-tunes a ResNet18 with a new head read from the folder; eval.lua reproduces the held-out accuracy", function()
    local d = H.tmpdir()
    local src = {}
    for i, n in ipairs({ "a.jpg", "b.png", "g.jpg", "p.jpg" }) do src[i] = Z .. n end
    local layout = { cats = {}, dogs = {}, owls = {} }
    for i = 1, 4 do
      layout.cats["c" .. i .. ".jpg"] = src[i]
      layout.dogs["d" .. i .. ".png"] = src[(i % 4) + 1]
      layout.owls["o" .. i .. ".jpg"] = src[((i + 1) % 4) + 1]
    end
    local folder = mkfolder(layout)
    os.execute("printf 'junk' > '" .. folder .. "/owls/broken.jpg'")
    spore.manual_seed(2)
    spore.save_checkpoint(spore.models.resnet18 { class_num = 10 }, d .. "/start.ckpt")
    local lj = "SPORE_LIB='" .. (os.getenv("SPORE_LIB") or "") .. "' luajit " .. H.root .. "/scripts/"
    local whole = " --net resnet18 --data-folder " .. folder .. " --image-size 32 --batch 4"
    local common = whole .. " --val-split 0.25 --seed 3"
    local out, rc = H.run(lj .. "finetune.lua --ckpt " .. d .. "/start.ckpt --new-head auto --epochs 1 --quiet"
      .. " --skip-bad-images --out " .. d .. "/run" .. common .. " 2>" .. d .. "/err.txt")
    assert.equal(0, rc, out .. io.open(d .. "/err.txt"):read("*a"))
    local json = require("spore.json")
    local ft = json.decode(out:match("([^\n]+)\n?$"))
    assert.equal(3, ft.new_head)
    assert.same({ "cats", "dogs", "owls" }, ft.classes)
    assert.equal(3, ft.val_images) -- 13 files, a quarter held out
    assert.equal(1, ft.bad_images)
    assert.truthy(io.open(d .. "/err.txt"):read("*a"):find("skipped 1 bad image", 1, true))
    local ckpt = ft.checkpoint
    assert.truthy(ckpt:find(d .. "/run/", 1, true))
    -- without --skip-bad-images the broken file stops eval.lua (whole folder) with one line naming it
    out, rc = H.run(lj .. "eval.lua --ckpt " .. ckpt .. whole .. " 2>&1")
    assert.equal(1, rc)
    assert.truthy(out:find("broken.jpg", 1, true), out)
    -- the same split (same files, same seed) skipping the same broken file
    out, rc = H.run(lj .. "eval.lua --ckpt " .. ckpt .. common .. " --skip-bad-images --quiet 2>/dev/null")
    assert.equal(0, rc, out)
    local ev = json.decode(out:match("([^\n]+)\n?$"))
    -- the held-out images are the same files: same accuracy, same loss
    assert.equal(ft.epochs[1].accuracy, ev.accuracy)
    assert.is_true(math.abs(ft.epochs[1].loss - ev.loss) < 1e-5, ft.epochs[1].loss .. " vs " .. ev.loss)
    out, rc = H.run(lj .. "predict.lua --net resnet18 --ckpt " .. ckpt .. " --image-size 32 --top 2 " .. Z .. "g.jpg")
    assert.equal(0, rc, out)
    local first = out:match("^[^\n]+")
    assert.truthy(first:match("^" .. (Z .. "g.jpg"):gsub("%p", "%%%0") .. ": %a+ %d%.%d+, %a+ %d%.%d+$"), first)
  end)
end)
