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

-- conv2d's direct path (one group, stride 1, no padding or dilation, C*kh*kw <= 32,
-- Wo >= 8: LeNet's conv1) and its vector im2col/col2im for unpadded stride-1 maps with
-- Wo >= 8 (LeNet's conv2), against a naive Lua loop: forward, grad_x, grad_w, grad_b.
describe("conv2d direct path and plain im2col", function()
  local cases = {
    { n = 4, cin = 1, cout = 6, kh = 5, kw = 5, h = 32, w = 32 }, -- LeNet conv1
    { n = 3, cin = 2, cout = 3, kh = 3, kw = 4, h = 9, w = 12 },  -- Wo = 9: overlapping last vector
    { n = 2, cin = 1, cout = 5, kh = 2, kw = 3, h = 5, w = 42 },  -- Wo = 40: two row blocks
    { n = 1, cin = 3, cout = 1, kh = 1, kw = 1, h = 3, w = 8 },   -- Wo = 8
    { n = 3, cin = 6, cout = 16, kh = 5, kw = 5, h = 14, w = 14 }, -- LeNet conv2: plain im2col, batched
    { n = 1, cin = 4, cout = 5, kh = 3, kw = 3, h = 12, w = 21 },  -- K = 36, one image, Wo = 19
  }
  for _, c in ipairs(cases) do
    it(("N=%d %d->%d k%dx%d %dx%d"):format(c.n, c.cin, c.cout, c.kh, c.kw, c.h, c.w), function()
      spore.manual_seed(11)
      local ho, wo = c.h - c.kh + 1, c.w - c.kw + 1
      local x = spore.randn({ c.n, c.cin, c.h, c.w })
      local w = spore.randn({ c.cout, c.cin, c.kh, c.kw })
      local b = spore.randn({ c.cout })
      local gy = spore.randn({ c.n, c.cout, ho, wo })
      local out = spore.empty({ c.n, c.cout, ho, wo })
      local gx, gw, gb = spore.empty({ c.n, c.cin, c.h, c.w }), spore.randn({ c.cout, c.cin, c.kh, c.kw }), spore.randn({ c.cout })
      local gw0, gb0 = gw:clone(), gb:clone() -- parameter gradients accumulate
      K.conv2d_forward(out, x, w, b, { 1, 1 }, { 0, 0, 0, 0 }, { 1, 1 }, 1)
      K.conv2d_backward(gx, gw, gb, gy, x, w, { 1, 1 }, { 0, 0, 0, 0 }, { 1, 1 }, 1)
      local X, Wt, B, GY = x:ptr(), w:ptr(), b:ptr(), gy:ptr()
      local function xi(n, ci, i, j) return ((n * c.cin + ci) * c.h + i) * c.w + j end
      local function wi(o, ci, i, j) return ((o * c.cin + ci) * c.kh + i) * c.kw + j end
      local function yi(n, o, i, j) return ((n * c.cout + o) * ho + i) * wo + j end
      local ry, rgx, rgw, rgb = {}, {}, {}, {}
      for i = 0, c.n * c.cin * c.h * c.w - 1 do rgx[i] = 0 end
      for i = 0, c.cout * c.cin * c.kh * c.kw - 1 do rgw[i] = gw0:ptr()[i] end
      for o = 0, c.cout - 1 do rgb[o] = gb0:ptr()[o] end
      for n = 0, c.n - 1 do
        for o = 0, c.cout - 1 do
          for i = 0, ho - 1 do
            for j = 0, wo - 1 do
              local s, g = B[o], GY[yi(n, o, i, j)]
              rgb[o] = rgb[o] + g
              for ci = 0, c.cin - 1 do
                for ki = 0, c.kh - 1 do
                  for kj = 0, c.kw - 1 do
                    local xa, wa = xi(n, ci, i + ki, j + kj), wi(o, ci, ki, kj)
                    s = s + Wt[wa] * X[xa]
                    rgx[xa] = rgx[xa] + Wt[wa] * g
                    rgw[wa] = rgw[wa] + X[xa] * g
                  end
                end
              end
              ry[yi(n, o, i, j)] = s
            end
          end
        end
      end
      local function check(what, got, ref, count)
        local p, maxd = got:ptr(), 0
        for i = 0, count - 1 do
          local d = math.abs(p[i] - ref[i]) / (1 + math.abs(ref[i]))
          if d > maxd then maxd = d end
        end
        assert.is_true(maxd < 1e-4, what .. ": max relative difference " .. maxd)
      end
      check("forward", out, ry, c.n * c.cout * ho * wo)
      check("grad_x", gx, rgx, c.n * c.cin * c.h * c.w)
      check("grad_w", gw, rgw, c.cout * c.cin * c.kh * c.kw)
      check("grad_b", gb, rgb, c.cout)
    end)
  end
end)
