-- nn_fastpath_spec.lua — the kernels' fast paths against their general path or a naive
-- loop: conv2d's chunked whole-batch GEMM (N > 1, small maps) against per-image calls
-- (N = 1 takes the per-image path), and max pooling's unrolled 2×2/2 and 3×3/2 windows
-- (values and argmax, NaN included) against a naive Lua loop.
local spore = require("spore")
local K = require("ffi.nn")

local function image(x, n)
  local s = x:shape()
  local per = s[2] * s[3] * s[4]
  local t = spore.empty({ 1, s[2], s[3], s[4] })
  local src, dst = x:ptr(), t:ptr()
  for i = 0, per - 1 do dst[i] = src[n * per + i] end
  return t
end

describe("conv2d batched (chunked) path", function()
  local cases = {
    { n = 64, cin = 1, cout = 6, k = 5, h = 32, stride = 1, pad = { 0, 0, 0, 0 }, groups = 1, bias = false }, -- LeNet conv1
    { n = 64, cin = 6, cout = 16, k = 5, h = 14, stride = 1, pad = { 0, 0, 0, 0 }, groups = 1, bias = true }, -- conv2
    { n = 7, cin = 4, cout = 6, k = 3, h = 9, stride = 2, pad = { 1, 1, 0, 2 }, groups = 2, bias = true },
    { n = 5, cin = 8, cout = 8, k = 1, h = 6, stride = 1, pad = { 0, 0, 0, 0 }, groups = 1, bias = false },
  }
  for _, c in ipairs(cases) do
    it(("N=%d %d->%d k%d s%d g%d"):format(c.n, c.cin, c.cout, c.k, c.stride, c.groups), function()
      spore.manual_seed(7)
      local x = spore.randn({ c.n, c.cin, c.h, c.h })
      local w = spore.randn({ c.cout, c.cin / c.groups, c.k, c.k })
      local b = c.bias and spore.randn({ c.cout }) or nil
      local ho = math.floor((c.h + c.pad[1] + c.pad[2] - c.k) / c.stride) + 1
      local wo = math.floor((c.h + c.pad[3] + c.pad[4] - c.k) / c.stride) + 1
      local out = spore.empty({ c.n, c.cout, ho, wo })
      K.conv2d_forward(out, x, w, b, { c.stride, c.stride }, c.pad, { 1, 1 }, c.groups)
      local one = spore.empty({ 1, c.cout, ho, wo })
      local per, op, maxd = c.cout * ho * wo, out:ptr(), 0
      for n = 0, c.n - 1 do
        K.conv2d_forward(one, image(x, n), w, b, { c.stride, c.stride }, c.pad, { 1, 1 }, c.groups)
        local p = one:ptr()
        for i = 0, per - 1 do
          local d = math.abs(op[n * per + i] - p[i]) / (1 + math.abs(p[i]))
          if d > maxd then maxd = d end
        end
      end
      assert.is_true(maxd < 1e-5, "max relative difference " .. maxd)
    end)
  end
end)

describe("maxpool2d fast paths", function()
  local function naive(x, k, s, p)
    local sh = x:shape()
    local N, C, H, W = sh[1], sh[2], sh[3], sh[4]
    local Ho = math.floor((H + p[1] + p[2] - k) / s) + 1
    local Wo = math.floor((W + p[3] + p[4] - k) / s) + 1
    local xp, out, arg = x:ptr(), {}, {}
    for nc = 0, N * C - 1 do
      for oh = 0, Ho - 1 do
        for ow = 0, Wo - 1 do
          local best, bi, nan = -math.huge, -1, false
          for i = 0, k - 1 do
            for j = 0, k - 1 do
              local ih, iw = oh * s - p[1] + i, ow * s - p[3] + j
              if ih >= 0 and ih < H and iw >= 0 and iw < W then
                local v = xp[nc * H * W + ih * W + iw]
                if bi < 0 then bi = ih * W + iw end
                -- the kernel's select order exactly: the index moves on a strict win, the running
                -- value is max(best, v) as maxss computes it (v when either is NaN)
                if v > best then bi = ih * W + iw end
                if not (best > v) then best = v end
                if v ~= v then nan = true end
              end
            end
          end
          out[#out + 1] = nan and 0 / 0 or (bi < 0 and 0 or best)
          arg[#arg + 1] = bi
        end
      end
    end
    return out, arg, { N, C, Ho, Wo }
  end
  local cases = {
    { k = 2, s = 2, h = 28, p = { 0, 0, 0, 0 } }, { k = 2, s = 2, h = 9, p = { 0, 0, 0, 0 } },
    { k = 2, s = 2, h = 9, p = { 0, 1, 0, 1 } }, { k = 3, s = 2, h = 12, p = { 0, 1, 0, 1 } },
    { k = 3, s = 2, h = 11, p = { 1, 1, 1, 1 } }, { k = 3, s = 2, h = 11, p = { 0, 0, 0, 0 } },
    { k = 3, s = 1, h = 7, p = { 0, 0, 0, 0 } },
  }
  for _, c in ipairs(cases) do
    it(("k%d s%d %dx%d pad %s"):format(c.k, c.s, c.h, c.h, table.concat(c.p, ",")), function()
      spore.manual_seed(3)
      local x = spore.randn({ 2, 3, c.h, c.h })
      local xp = x:ptr()
      xp[5] = 0 / 0 -- a NaN in the first window row
      xp[c.h * c.h + 2] = xp[c.h * c.h + 3] -- a tie
      local want, warg, shape = naive(x, c.k, c.s, c.p)
      local out, arg = spore.empty(shape), spore.zeros(shape, "int32")
      K.maxpool_forward(out, arg, x, { c.k, c.k }, { c.s, c.s }, c.p)
      local op, ap = out:ptr(), arg:ptr()
      for i = 1, #want do
        local got, w = op[i - 1], want[i]
        if w ~= w then assert.is_true(got ~= got, "NaN expected at " .. i)
        else assert.are.equal(w, got) end
        assert.are.equal(warg[i], ap[i - 1])
      end
    end)
  end
end)
