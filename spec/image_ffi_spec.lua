-- image_ffi_spec.lua — bindings/ffi/image.lua: decoding, npy, transforms and the loader as
-- Lua sees them (Tensors and plain values, no pointers); pixel-level checks against PIL and
-- MindSpore are in spec/engine/test_image.c.
local H = spec_helper
local image = require("ffi.image")

local F = "spec/fixtures/images/"

local function bytes(t)
  local n = t:numel()
  local f = t:to("cpu"):to("float64"):flat()
  local s = {}
  for i = 1, n do s[i] = f[i] end
  return s
end

describe("ffi.image", function()
  it("decodes JPEG and PNG to uint8 HWC, with channels and EXIF orientation", function()
    local x = image.decode(F .. "rgb_baseline.jpg")
    assert.same({ 40, 56, 3 }, x:shape())
    assert.equal("uint8", x:dtype())
    assert.same({ 40, 56, 1 }, image.decode(F .. "rgb.png", 1):shape())
    assert.same({ 40, 56, 3 }, image.decode(F .. "gray.png", 3):shape())
    assert.same({ 10, 6, 3 }, image.decode(F .. "exif_o6.jpg"):shape()) -- stored 6x10, rotated
    local h, w, c = image.probe(F .. "exif_o8.jpg")
    assert.same({ 10, 6, 3 }, { h, w, c })
    local f = io.open(F .. "palette.png", "rb")
    local s = f:read("*a")
    f:close()
    assert.same(bytes(image.decode(F .. "palette.png")), bytes(image.decode_bytes(s, "palette.png")))
  end)

  it("raises one line naming the file for corrupt images", function()
    for _, c in ipairs { { "bad_truncated.png", "truncated" }, { "bad_zero.jpg", "empty file" },
                         { "bad_magic.jpg", "not a JPEG or PNG" }, { "bad_huge.jpg", "more than the limit" } } do
      local ok, err = pcall(image.decode, F .. c[1])
      assert.is_false(ok)
      assert.truthy(err:find(F .. c[1], 1, true), err)
      assert.truthy(err:find(c[2], 1, true), err)
      assert.is_nil(err:find("\n"))
    end
    image.set_max_pixels(100)
    assert.is_false(pcall(image.decode, F .. "rgb.png"))
    image.set_max_pixels(nil)
    assert.equal(178956970, image.max_pixels())
  end)

  it("round-trips .npy and reads numpy's files", function()
    local g = image.npy_load(F .. "rgb_baseline.jpg.c3.npy")
    assert.same(bytes(image.decode(F .. "rgb_baseline.jpg")), bytes(g))
    local p = os.tmpname()
    local y = image.transform(g, image.compile_ops { { kind = "rescale", a = 1 / 255, b = 0 } })
    image.npy_save(p, y)
    local z = image.npy_load(p)
    os.remove(p)
    assert.equal("float32", z:dtype())
    assert.same(y:shape(), z:shape())
    assert.same(bytes(y), bytes(z))
  end)

  it("runs a MindSpore pipeline: Resize(int), CenterCrop, Normalize, HWC2CHW", function()
    local ops = image.compile_ops {
      { kind = "resize", h = 24, resize_short = true },
      { kind = "center_crop", h = 20, w = 20 },
      { kind = "normalize", mean = { 1, 2, 3 }, std = { 2, 2, 2 } },
      { kind = "hwc2chw" },
    }
    local shape, dt = image.out_info(40, 56, 3, ops)
    assert.same({ 3, 20, 20 }, shape)
    assert.equal("float32", dt)
    local y = image.transform(image.decode(F .. "rgb_baseline.jpg"), ops)
    assert.same({ 3, 20, 20 }, y:shape())
    -- Resize(24) keeps uint8, so y * 2 + mean is an integer
    local v = y:get { 2, 5, 7 } * 2 + 2
    assert.near(math.floor(v + 0.5), v, 1e-4)
    assert.has_error(function() image.compile_ops { { kind = "resize", h = 3, w = 3, interp = "linear" } } end,
      "image op 1: unknown key 'interp' (known: a, b, dtype, fill, h, interpolation, kind, max_attempts, mean, pad, pad_if_needed, pad_mode, padding, prob, ratio, resize_short, scale, std, w)")
  end)

  it("loads batches in order on threads, the same whatever the thread count, skipping bad files", function()
    local paths = { F .. "rgb_baseline.jpg", F .. "bad_truncated.jpg", F .. "rgb.png", F .. "gray.jpg", F .. "palette.png" }
    local ops = image.compile_ops {
      { kind = "random_resized_crop", h = 16, w = 16 },
      { kind = "random_hflip", prob = 0.5 },
      { kind = "hwc2chw" },
    }
    local function run(threads)
      local L = image.loader(paths, { 0, 1, 2, 3, 4 }, ops, { batch_size = 2, threads = threads, channels = 3,
                                                           skip_bad = true, seed = 11 })
      L:start({ 5, 4, 3, 2, 1 }, 0)
      local out, labels = {}, {}
      while true do
        local x, y = L:next()
        if not x then break end
        assert.equal("uint8", x:dtype())
        for _, b in ipairs(bytes(x)) do out[#out + 1] = b end
        for i = 1, y:numel() do labels[#labels + 1] = y:get { i } end
      end
      local skipped, why = L:skipped(), L:last_skip()
      L:close()
      return out, labels, skipped, why
    end
    local a, la, sa, why = run(1)
    local b, lb, sb = run(3)
    assert.same({ 4, 3, 2, 0 }, la)
    assert.equal(1, sa)
    assert.truthy(why:find("bad_truncated.jpg", 1, true))
    assert.same(la, lb)
    assert.equal(sa, sb)
    assert.same(a, b)
    local L = image.loader({ F .. "bad_zero.jpg" }, nil, ops, { batch_size = 1 })
    L:start()
    assert.has_error(function() L:next() end,
      F .. "bad_zero.jpg: empty file (0 bytes), expected a JPEG or PNG image")
    L:close()
    assert.has_error(function() L:next() end)
  end)
end)
