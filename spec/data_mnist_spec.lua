-- data_mnist_spec.lua — real MNIST / Fashion-MNIST decoding, the tutorial
-- pipeline, batching (shuffle, drop_remainder, repeat, reused buffers) and
-- errors on malformed files naming the file.
local spore = require("spore")
local H = spec_helper
local data = spore.data
local ffi = require("ffi")

local function mnist_dir()
  local p, msg = H.fixture("mnist/t10k-images-idx3-ubyte.gz")
  if not p then return nil, msg end
  return (p:gsub("/t10k%-images%-idx3%-ubyte%.gz$", ""))
end

local function copy_file(src, dst, nbytes)
  local f = assert(io.open(src, "rb"))
  local s = f:read(nbytes or "*a")
  f:close()
  local g = assert(io.open(dst, "wb"))
  g:write(s)
  g:close()
end

describe("MNIST decoding (real t10k)", function()
  it("decodes the t10k labels with the known per-digit counts", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    local labels = data.idx_load(dir .. "/t10k-labels-idx1-ubyte.gz")
    assert.same({ 10000 }, labels:shape())
    assert.equal("uint8", labels:dtype())
    local counts = {}
    for i = 0, 9 do counts[i + 1] = 0 end
    local p = labels:ptr()
    for i = 0, 9999 do counts[p[i] + 1] = counts[p[i] + 1] + 1 end
    assert.same({ 980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009 }, counts)
  end)

  it("decodes the images as uint8 [10000,28,28] with MNIST's pixel statistics", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    local im = data.idx_load(dir .. "/t10k-images-idx3-ubyte.gz")
    assert.same({ 10000, 28, 28 }, im:shape())
    assert.equal("uint8", im:dtype())
    -- MNIST's well-known mean pixel is 0.1307 * 255 (train); t10k is close to it
    local mean = im:to("float64"):mean() / 255
    assert.is_true(math.abs(mean - 0.1325) < 0.002, "mean " .. mean)
    assert.equal(0, im:min()); assert.equal(255, im:max())
  end)

  it("mnist(dir) yields float32 [N,1,28,28] in [0,1] and int32 labels; size and num_batches", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    local ds = data.mnist(dir, { split = "test", batch = 64, shuffle = false })
    assert.equal(10000, ds:size())
    assert.equal(157, ds:num_batches())
    local n, last = 0, nil
    for x, y in ds:batches() do
      n = n + 1
      if n == 1 then
        assert.same({ 64, 1, 28, 28 }, x:shape())
        assert.equal("float32", x:dtype())
        assert.same({ 64 }, y:shape())
        assert.equal("int32", y:dtype())
        assert.equal(7, y[1]) -- the first t10k digit is a 7
        assert.is_true(x:max() <= 1 and x:min() >= 0)
      end
      last = x:size(1)
    end
    assert.equal(157, n)
    assert.equal(10000 - 156 * 64, last)
  end)

  it("raw transforms={} give uint8 HWC images equal to the decoded file", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    local ds = data.mnist(dir, { split = "test", batch = 8, shuffle = false, transforms = {}, num_samples = 8 })
    local x = ds:batches()()
    assert.same({ 8, 28, 28, 1 }, x:shape())
    assert.equal("uint8", x:dtype())
    local im = data.idx_load(dir .. "/t10k-images-idx3-ubyte.gz")
    assert.equal(0, (x:to("cpu"):reshape(8, 28, 28):to("float32") - im:narrow(1, 1, 8):to("float32")):abs():max())
  end)

  it("mnist_tutorial: resize 32 bilinear, /255, (x-0.1307)/0.3081, CHW, int32 labels, batch 32", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    local ds = data.mnist_tutorial(dir, "test")
    assert.equal(32, ds:get_batch_size())
    assert.equal(313, ds:num_batches())
    local x, y = ds:batches()()
    assert.same({ 32, 1, 32, 32 }, x:shape())
    assert.equal("int32", y:dtype())
    -- naive reference for image 1
    local im = data.idx_load(dir .. "/t10k-images-idx3-ubyte.gz"):select(1, 1):to("float64"):flat()
    local maxd = 0
    local xp = x:to("cpu"):ptr()
    for oy = 0, 31 do
      for ox = 0, 31 do
        local fy = math.min(math.max((oy + 0.5) * 28 / 32 - 0.5, 0), 27)
        local fx = math.min(math.max((ox + 0.5) * 28 / 32 - 0.5, 0), 27)
        local y0, x0 = math.floor(fy), math.floor(fx)
        local y1, x1 = math.min(y0 + 1, 27), math.min(x0 + 1, 27)
        local wy, wx = fy - y0, fx - x0
        local v = (im[y0 * 28 + x0 + 1] * (1 - wx) + im[y0 * 28 + x1 + 1] * wx) * (1 - wy)
          + (im[y1 * 28 + x0 + 1] * (1 - wx) + im[y1 * 28 + x1 + 1] * wx) * wy
        -- Resize on the uint8 image gives uint8 (MindSpore): an integer within 1 of v
        local u = (xp[oy * 32 + ox] * 0.3081 + 0.1307) * 255
        if math.abs(u - math.floor(u + 0.5)) > 1e-3 then maxd = 99 end
        maxd = math.max(maxd, math.abs(v - u))
      end
    end
    assert.is_true(maxd <= 1, "max diff " .. maxd)
  end)

  it("reuses its batch buffers: engine memory stays flat over epochs", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    local ds = data.mnist_tutorial(dir, "test", { num_samples = 2000, shuffle = true })
    local first
    for x in ds:batches() do first = x break end
    collectgarbage("collect")
    local live0 = spore.mem_stats().live
    local same = true
    for _ = 1, 3 do
      for x in ds:batches() do
        if x:size(1) == 32 and not x:shares_storage(first) then same = false end
      end
    end
    collectgarbage("collect")
    assert.is_true(same, "every full batch is the same buffer")
    assert.is_true(spore.mem_stats().live - live0 < 64 * 1024, "engine live bytes grew")
  end)

  it("Fashion-MNIST from the Debian path (60,000 + 10,000, 6,000/1,000 per class)", function()
    local f = io.open(data.FASHION_MNIST_DIR .. "/t10k-labels-idx1-ubyte.gz", "rb")
    if not f then pending("Fashion-MNIST missing: " .. data.FASHION_MNIST_DIR .. " (apt install dataset-fashion-mnist)") return end
    f:close()
    local test = data.fashion_mnist(nil, { split = "test", batch = 100 })
    assert.equal(10000, test:size())
    assert.equal(100, test:num_batches())
    local counts = {}
    local p = test.labels:ptr()
    for i = 0, 9999 do counts[p[i] + 1] = (counts[p[i] + 1] or 0) + 1 end
    for c = 1, 10 do assert.equal(1000, counts[c]) end
    local train = data.fashion_mnist({ split = "train" })
    assert.equal(60000, train:size())
    assert.equal("Ankle boot", train.classes[10])
  end)
end)

describe("idx errors name the file and the expectation", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. tmp .. "'") end)

  local function expect_error(fn, ...)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    for _, needle in ipairs({ ... }) do
      assert.is_truthy(tostring(err):find(needle, 1, true), "expected '" .. needle .. "' in: " .. tostring(err))
    end
  end

  it("missing files", function()
    expect_error(function() data.mnist(tmp, { split = "test" }) end, tmp .. "/t10k-images-idx3-ubyte", "cannot find")
  end)

  it("a truncated gzip file", function()
    local dir, msg = mnist_dir()
    if not dir then pending(msg) return end
    copy_file(dir .. "/t10k-images-idx3-ubyte.gz", tmp .. "/t10k-images-idx3-ubyte.gz", 500000)
    copy_file(dir .. "/t10k-labels-idx1-ubyte.gz", tmp .. "/t10k-labels-idx1-ubyte.gz")
    expect_error(function() data.mnist(tmp, { split = "test" }) end, tmp .. "/t10k-images-idx3-ubyte.gz", "truncated")
  end)

  it("a wrong magic", function()
    local f = io.open(tmp .. "/t10k-labels-idx1-ubyte", "wb")
    f:write("\8\3\0\1garbage")
    f:close()
    expect_error(function() data.idx_load(tmp .. "/t10k-labels-idx1-ubyte") end, tmp .. "/t10k-labels-idx1-ubyte", "magic")
  end)

  it("dims whose product differs from the data length", function()
    local f = io.open(tmp .. "/x-idx1", "wb")
    f:write("\0\0\8\1\0\0\0\10", string.rep("\1", 9))
    f:close()
    expect_error(function() data.idx_load(tmp .. "/x-idx1") end, tmp .. "/x-idx1", "truncated idx data", "10")
    f = io.open(tmp .. "/y-idx1", "wb")
    f:write("\0\0\8\1\0\0\0\10", string.rep("\1", 11))
    f:close()
    expect_error(function() data.idx_load(tmp .. "/y-idx1") end, tmp .. "/y-idx1", "longer than its dims")
  end)

  it("image and label counts that disagree", function()
    local f = io.open(tmp .. "/t10k-images-idx3-ubyte", "wb")
    f:write("\0\0\8\3\0\0\0\2\0\0\0\2\0\0\0\2", string.rep("\0", 8))
    f:close()
    f = io.open(tmp .. "/t10k-labels-idx1-ubyte", "wb")
    f:write("\0\0\8\1\0\0\0\3", "\1\2\3")
    f:close()
    expect_error(function() data.mnist(tmp, { split = "test" }) end, "2 images", "3 labels")
  end)
end)
