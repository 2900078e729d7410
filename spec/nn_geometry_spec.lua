-- nn_geometry_spec.lua — conv/pool geometry is computed once, in C (sp_conv2d_geometry,
-- sp_pool2d_geometry), and queried by Conv2d, MaxPool2d and AvgPool2d. Checked over a grid
-- of sizes against the formulas the Lua layers used before (kept here as the oracle) and
-- against MindSpore's documented output sizes; errors name the layer.
local spore = require("spore")
local nn = spore.nn
local K = require("ffi.nn")

-- The former Lua rules (lua/spore/nn/conv.lua, pooling.lua before the move to C).
local function old_same_pad(n, k, s, d)
  local out = math.ceil(n / s)
  local total = math.max((out - 1) * s + (k - 1) * d + 1 - n, 0)
  local a = math.floor(total / 2)
  return a, total - a
end
local function old_geometry(H, W, k, s, d, mode, padding)
  local p
  if mode == "valid" then p = { 0, 0, 0, 0 }
  elseif mode == "pad" then p = padding
  else
    local t, b = old_same_pad(H, k[1], s[1], d[1])
    local l, r = old_same_pad(W, k[2], s[2], d[2])
    p = { t, b, l, r }
  end
  local ho = math.floor((H + p[1] + p[2] - d[1] * (k[1] - 1) - 1) / s[1]) + 1
  local wo = math.floor((W + p[3] + p[4] - d[2] * (k[2] - 1) - 1) / s[2]) + 1
  return ho, wo, p
end
-- MindSpore's documented output sizes (mindspore.nn.Conv2d / MaxPool2d).
local function ms_out(n, k, s, d, mode, lo, hi)
  if mode == "same" then return math.ceil(n / s) end
  if mode == "valid" then return math.ceil((n - (k - 1) * d) / s) end
  return math.floor((n + lo + hi - (k - 1) * d - 1) / s) + 1
end

describe("sp_conv2d_geometry", function()
  it("matches the former Lua rules and MindSpore's formulas over a grid", function()
    local n = 0
    for _, mode in ipairs({ "same", "valid", "pad" }) do
      for H = 1, 13 do
        for k = 1, 5 do
          for s = 1, 3 do
            for d = 1, 3 do
              local W, kw, sw, dw = H + 2, math.max(1, k - 1), (s % 3) + 1, 1
              local padding = { k % 3, (k + 1) % 3, s % 2, (s + H) % 3 }
              local kk, ss, dd = { k, kw }, { s, sw }, { d, dw }
              local eho, ewo, ep = old_geometry(H, W, kk, ss, dd, mode, padding)
              local fits = (H + ep[1] + ep[2] >= (k - 1) * d + 1) and (W + ep[3] + ep[4] >= (kw - 1) * dw + 1)
              if fits then
                local ho, wo, p = K.conv2d_geometry(H, W, kk, ss, dd, mode, padding)
                assert.same(ep, p)
                assert.are.equal(eho, ho)
                assert.are.equal(ewo, wo)
                assert.are.equal(ms_out(H, k, s, d, mode, p[1], p[2]), ho)
                assert.are.equal(ms_out(W, kw, sw, dw, mode, p[3], p[4]), wo)
                n = n + 1
              else
                local ok, err = pcall(K.conv2d_geometry, H, W, kk, ss, dd, mode, padding, "Conv2d(test)")
                assert.is_false(ok)
                assert.matches("Conv2d(test): conv2d geometry: input", err, 1, true)
                assert.matches("smaller than the", err, 1, true)
              end
            end
          end
        end
      end
    end
    assert.is_true(n > 1000)
  end)

  it("puts the odd padding pixel at the bottom/right for 'same'", function()
    -- 7 wide, k 3, stride 2: out 4, total 2 -> 1, 1; 8 wide: out 4, total 1 -> 0, 1
    local ho, wo, p = K.conv2d_geometry(7, 8, { 3, 3 }, { 2, 2 }, { 1, 1 }, "same")
    assert.are.equal(4, ho); assert.are.equal(4, wo)
    assert.same({ 1, 1, 0, 1 }, p)
  end)

  it("refuses stride, dilation or kernel 0, negative padding and a bad pad_mode, naming the layer", function()
    local bad = {
      { { 3, 3 }, { 0, 1 }, { 1, 1 }, "same", nil, "stride must be >= 1" },
      { { 3, 3 }, { 1, 1 }, { 1, 0 }, "valid", nil, "dilation must be >= 1" },
      { { 0, 3 }, { 1, 1 }, { 1, 1 }, "valid", nil, "kernel_size must be >= 1" },
      { { 3, 3 }, { 1, 1 }, { 1, 1 }, "pad", { 0, -1, 0, 0 }, "must be >= 0" },
      { { 3, 3 }, { 1, 1 }, { 1, 1 }, "full", nil, "pad_mode must be 'same', 'valid' or 'pad', got 'full'" },
    }
    for _, b in ipairs(bad) do
      local ok, err = pcall(K.conv2d_geometry, 8, 8, b[1], b[2], b[3], b[4], b[5], "Conv2d(x)")
      assert.is_false(ok)
      assert.matches("Conv2d(x): ", err, 1, true)
      assert.matches(b[6], err, 1, true)
      assert.is_nil(err:find("\n"))
    end
  end)
end)

describe("sp_pool2d_geometry", function()
  it("matches the former Lua rules and MindSpore's formulas over a grid", function()
    local n = 0
    for _, mode in ipairs({ "same", "valid", "pad" }) do
      for H = 1, 13 do
        for k = 1, 4 do
          for s = 1, 3 do
            local W, kw, sw = H + 1, k % 2 + 1, s
            local padding = { (H + k) % k, (H + 1) % k, 0, kw - 1 }
            local kk, ss = { k, kw }, { s, sw }
            local eho, ewo, ep = old_geometry(H, W, kk, ss, { 1, 1 }, mode, padding)
            if H + ep[1] + ep[2] >= k and W + ep[3] + ep[4] >= kw then
              local ho, wo, p = K.pool2d_geometry(H, W, kk, ss, mode, padding)
              assert.same(ep, p)
              assert.are.equal(eho, ho); assert.are.equal(ewo, wo)
              assert.are.equal(ms_out(H, k, s, 1, mode, p[1], p[2]), ho)
              assert.are.equal(ms_out(W, kw, sw, 1, mode, p[3], p[4]), wo)
              n = n + 1
            else
              assert.has_error(function() K.pool2d_geometry(H, W, kk, ss, mode, padding) end)
            end
          end
        end
      end
    end
    assert.is_true(n > 300)
  end)

  it("refuses 'pad' padding outside [0, kernel) (MaxPool2d's rule)", function()
    local ok, err = pcall(K.pool2d_geometry, 8, 8, { 3, 3 }, { 2, 2 }, "pad", { 3, 1, 1, 1 }, "MaxPool2d(3)")
    assert.is_false(ok)
    assert.matches("MaxPool2d(3): pool2d geometry: padding {3, 1, 1, 1}", err, 1, true)
    assert.matches("must be in [0, kernel_size)", err, 1, true)
  end)
end)

describe("layers use the engine's geometry", function()
  it("Conv2d:pads and output shapes for same/valid/pad", function()
    local x = spore.zeros({ 1, 2, 7, 8 })
    local c = nn.Conv2d(2, 3, 3, { stride = 2, pad_mode = "same" })
    assert.same({ 1, 1, 0, 1 }, c:pads(7, 8))
    assert.same({ 1, 3, 4, 4 }, c(x):shape())
    c = nn.Conv2d(2, 3, 3, { stride = 2, pad_mode = "valid", dilation = 2 })
    assert.same({ 1, 3, 2, 2 }, c(x):shape())
    c = nn.Conv2d(2, 3, { 3, 1 }, { pad_mode = "pad", padding = { 1, 2, 0, 3 } })
    assert.same({ 1, 3, 8, 11 }, c(x):shape())
  end)

  it("MaxPool2d / AvgPool2d output shapes for same/valid/pad", function()
    local x = spore.zeros({ 2, 1, 7, 8 })
    assert.same({ 2, 1, 4, 4 }, nn.MaxPool2d(3, 2, "same")(x):shape())
    assert.same({ 2, 1, 3, 3 }, nn.MaxPool2d(3, 2, "valid")(x):shape())
    assert.same({ 2, 1, 4, 4 }, nn.MaxPool2d { kernel_size = 3, stride = 2, pad_mode = "pad", padding = 1 }(x):shape())
    assert.same({ 2, 1, 4, 4 }, nn.AvgPool2d(2, 2, "same")(x):shape())
  end)

  it("errors are one line naming the layer, at build time and at forward time", function()
    local ok, err = pcall(nn.Conv2d, 1, 1, 3, { stride = 0 })
    assert.is_false(ok)
    assert.matches("Conv2d(1, 1, kernel_size=3x3, stride=0, pad_mode=same): conv2d geometry: stride must be >= 1",
      err, 1, true)
    ok, err = pcall(nn.MaxPool2d, { kernel_size = 2, stride = 2, pad_mode = "pad", padding = 2 })
    assert.is_false(ok)
    assert.matches("MaxPool2d(2, stride=2, pad_mode=pad): pool2d geometry: padding", err, 1, true)
    local m = nn.Conv2d(1, 1, 5, { pad_mode = "valid" })
    ok, err = pcall(function() return m(spore.zeros({ 1, 1, 4, 9 })) end)
    assert.is_false(ok)
    assert.matches("Conv2d(1, 1, kernel_size=5x5, stride=1, pad_mode=valid): conv2d geometry: input height 4", err, 1, true)
    assert.is_nil(err:find("\n"))
    local p = nn.AvgPool2d(3, 1)
    ok, err = pcall(function() return p(spore.zeros({ 1, 1, 9, 2 })) end)
    assert.is_false(ok)
    assert.matches("AvgPool2d(3, stride=1, pad_mode=valid): pool2d geometry: input width 2", err, 1, true)
  end)
end)

describe("geometry arguments checked in the binding", function()
  it("refuses a short padding table, naming the layer", function()
    local ok, err = pcall(nn.Conv2d, 1, 1, 3, { pad_mode = "pad", padding = { 1, 1 } })
    assert.is_false(ok)
    assert.matches("Conv2d(1, 1, kernel_size=3x3, stride=1, pad_mode=pad): padding must be a number or {top, bottom, left, right}",
      err, 1, true)
  end)
end)
