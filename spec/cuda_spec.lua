-- cuda_spec.lua — every CUDA kernel against the CPU reference path (tag "cuda": run with
-- `busted --run=cuda spec/cuda_spec.lua`, or scripts/gpu_check.sh). As ggml's backend
-- tests: each op runs on the CPU and on cuda:0 from the same inputs and its outputs are
-- compared by the normalised mean squared error
--     NMSE = sum((gpu - cpu)^2) / sum(cpu^2)
-- under a bound stated per op (a NaN where the CPU has one counts as equal). The bounds:
--   0       copies, conversions, fills, max/min, argmax, pooling argmax, and the ops that
--           run the CPU kernel on host copies (random fills, topk, dropout, AMSGrad,
--           gradient centralisation): the same values by construction;
--   1e-12   elementwise, reductions, softmax/cross-entropy, pooling, BatchNorm and the
--           optimizer updates: same formulas in the same precision (double accumulators),
--           only the summation order differs;
--   1e-10   float32 GEMM and Dense (cuBLAS in full float32: other blocking, same precision);
--   1e-5    Conv2d forward and gradients (cuDNN may use TF32 tensor cores for float32, as
--           PyTorch does by default: a 10-bit mantissa in the products);
--   1e-6    a LeNet training run (3 SGD steps, parameters after): the conv bound, compounded.
-- Without a GPU (or in a build without `make CUDA=1`) every case is pending, with the reason.
local spore = require("spore")
local K = require("ffi.nn")

-- SPORE_CUDA_SPEC_DEVICE=sim runs the harness itself against the simulated device (the CPU
-- kernels: every NMSE is 0), to check this file on a machine without a GPU.
local GPU = os.getenv("SPORE_CUDA_SPEC_DEVICE") or "cuda"
local NGPU = GPU == "sim" and 1 or spore.device_count()
local GPU0 = GPU == "sim" and "sim" or "cuda:0"

local function vals(t)
  local c = t:to("cpu"):contiguous():to("float64")
  local p, r = c:ptr(), {}
  for i = 0, c:numel() - 1 do r[i + 1] = p[i] end
  return r
end

local function nmse(got, ref)
  if #got ~= #ref then return math.huge end
  local num, den = 0, 0
  for i = 1, #ref do
    local a, b = got[i], ref[i]
    if b ~= b or a ~= a then
      if not (a ~= a and b ~= b) then return math.huge end
    elseif a ~= b then
      if math.abs(b) == math.huge or math.abs(a) == math.huge then return math.huge end
      num = num + (a - b) ^ 2
      den = den + b * b
    else
      den = den + b * b
    end
  end
  if num == 0 then return 0 end
  return num / math.max(den, 1e-300)
end

-- inputs: made on the CPU from a seed (the same values for both runs), then moved
local function randn(dev, seed, shape, scale)
  spore.manual_seed(seed)
  local t = spore.randn(shape)
  if scale then t = t * scale end
  return t:to(dev)
end
local function empty(dev, shape, dtype) return spore.empty(shape, dtype or "float32", dev) end
local function zeros(dev, shape) return spore.zeros(shape):to(dev) end
local function labels(dev, n, c, seed)
  local t = {}
  math.randomseed(seed or 3)
  for i = 1, n do t[i] = math.random(0, c - 1) end
  return spore.tensor(t, "int32"):to(dev)
end

local function case(name, bound, fn)
  it(("%s (NMSE <= %g)"):format(name, bound), function()
    local ref, got = fn("cpu"), fn(GPU)
    assert.are.equal(#ref, #got)
    for k = 1, #ref do
      assert.are.equal(ref[k]:device(), "cpu")
      local e = nmse(vals(got[k]), vals(ref[k]))
      assert(e <= bound, ("%s: output %d: NMSE %g exceeds %g"):format(name, k, e, bound))
    end
  end)
end
-- outputs moved to the host for the comparison
local function host(...)
  local r = {}
  for i, t in ipairs({ ... }) do r[i] = t:to("cpu") end
  return r
end

describe("cuda kernels against the CPU #cuda", function()
  if NGPU == 0 then
    local why = "no CUDA GPU here (spore.device_count() == 0: no GPU visible, or a build without `make CUDA=1`)"
    io.stderr:write("cuda_spec: skipped: " .. why .. "\n")
    pending(why)
    return
  end

  describe("memory", function()
    it("round trip of small and staged (>1 MiB) sizes, strided views", function()
      for _, n in ipairs({ 1, 1000, 300000, 3000000 }) do
        local x = randn("cpu", n, { n })
        local y = x:to(GPU)
        assert.are.equal(GPU0, y:device())
        assert.are.equal(0, nmse(vals(y), vals(x)))
      end
      local m = randn("cpu", 5, { 37, 53 })
      assert.are.equal(0, nmse(vals(m:to(GPU):t():contiguous()), vals(m:t():contiguous())))
    end)
    it("counts device bytes in sp_mem_stats and returns them", function()
      local ffi, C = require("ffi"), require("ffi.lib").C
      local code = require("ffi.tensor").device_code(GPU0)
      local function live()
        local l, p, n = ffi.new("int64_t[1]"), ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
        assert.are.equal(0, C.sp_mem_stats_device(code, l, p, n))
        return tonumber(l[0])
      end
      collectgarbage(); collectgarbage()
      local before = live()
      local t = spore.empty({ 1024, 1024 }, "float32", GPU)
      assert.are.equal(before + 4 * 1024 * 1024, live())
      t:free()
      assert.are.equal(before, live())
    end)
    it("an impossible allocation is a one-line error, and the device still works after it", function()
      local ok, err = pcall(spore.empty, { 1024, 1024, 1024, 1024 }, "float32", GPU)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("out of memory", 1, true))
      assert.is_nil(tostring(err):find("\n", 1, true))
      assert.are.equal(0, nmse(vals(randn(GPU, 1, { 10 })), vals(randn("cpu", 1, { 10 }))))
    end)
    it("cuda:N beyond the GPUs is a clear error", function()
      if GPU == "sim" then return end
      local ok, err = pcall(function() return spore.zeros({ 2 }):to("cuda:" .. NGPU) end)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("cuda:" .. NGPU, 1, true))
    end)
  end)

  describe("copy and fill", function()
    for _, dt in ipairs({ "float16", "bfloat16", "float64", "int32", "int64", "uint8", "bool", "int8" }) do
      case("convert float32 -> " .. dt, 0, function(dev) return host(randn(dev, 11, { 513 }, 300):to(dt)) end)
      case("convert " .. dt .. " -> float32", 0, function(dev)
        return host(randn("cpu", 12, { 257 }, 40):to(dt):to(dev):to("float32"))
      end)
    end
    case("strided copy (transpose, narrow)", 0, function(dev)
      local x = randn(dev, 13, { 7, 9, 5 })
      return host(x:transpose(1, 3):contiguous(), x:narrow(2, 3, 4):contiguous())
    end)
    for _, dt in ipairs({ "float32", "float16", "int32", "int64", "uint8" }) do
      case("fill " .. dt, 0, function(dev) return host(spore.empty({ 3, 7 }, dt, dev):fill_(-2.75)) end)
    end
  end)

  describe("elementwise and reductions", function()
    for _, op in ipairs({ "add", "sub", "mul", "div", "maximum", "minimum" }) do
      case(op .. " with broadcasting, float32", 1e-12, function(dev)
        local a, b = randn(dev, 21, { 4, 1, 6 }), randn(dev, 22, { 5, 1 })
        return host(a[op](a, b), a[op](a, a))
      end)
      case(op .. " float32 with float64 (through double)", 1e-12, function(dev)
        local a, b = randn(dev, 21, { 4, 5, 6 }), randn(dev, 22, { 6 }):to("float64")
        return host(a[op](a, b))
      end)
      case(op .. " with a scalar", 1e-12, function(dev)
        local x = randn(dev, 23, { 300 })
        return host(x[op](x, 1.5))
      end)
    end
    case("scalar on the left (reverse)", 1e-12, function(dev)
      local x = randn(dev, 23, { 300 }):abs() + 1
      return host(2.5 / x, 1 - x)
    end)
    case("pow float64", 1e-12, function(dev)
      return host(randn(dev, 24, { 50 }):abs():to("float64"):pow(randn(dev, 25, { 50 }):to("float64")))
    end)
    case("add int32 (host path)", 0, function(dev)
      return host(randn(dev, 26, { 40 }, 100):to("int32"):add(randn(dev, 27, { 40 }, 100):to("int32")))
    end)
    for _, op in ipairs({ "neg", "abs", "exp", "log", "sqrt", "tanh", "sigmoid", "relu" }) do
      case("unary " .. op, 1e-12, function(dev)
        local x = randn(dev, 28, { 1000 })
        if op == "log" or op == "sqrt" then x = x:abs() end
        return host(x[op](x))
      end)
    end
    for _, r in ipairs({ "sum", "mean", "max", "min", "argmax", "argmin" }) do
      case("reduce_all " .. r, r:match("^arg") and 0 or 1e-12, function(dev)
        local x = randn(dev, 31, { 3, 100001 })
        return { spore.tensor({ x[r](x), x:t()[r](x:t()) }, "float64") }
      end)
      for d = 1, 3 do
        case(("reduce_dim %s dim %d"):format(r, d), r:match("^arg") and 0 or 1e-12, function(dev)
          local x = randn(dev, 32, { 5, 6, 7 })
          return host(x[r](x, d), x:transpose(1, 3)[r](x:transpose(1, 3), d, true))
        end)
      end
    end
    case("reduce with NaN (first NaN wins)", 0, function(dev)
      local x = spore.tensor({ { 1, 0 / 0, 3 }, { 5, 2, 0 / 0 } }):to(dev)
      return host(x:max(2), x:argmax(2), x:argmin(1))
    end)
    case("count_equal and topk (host path)", 0, function(dev)
      local x = randn(dev, 33, { 8, 20 })
      local v, i = x:topk(3, 2)
      return host(v, i, spore.tensor({ x:argmax(2):count_equal(x:argmax(2)) }))
    end)
  end)

  describe("GEMM and Dense (cuBLAS)", function()
    for _, dt in ipairs({ "float32", "float64" }) do
      for ta = 0, 1 do
        for tb = 0, 1 do
          case(("matmul %s trans_a=%d trans_b=%d"):format(dt, ta, tb), dt == "float32" and 1e-10 or 1e-20, function(dev)
            local a = randn(dev, 41, ta == 1 and { 70, 33 } or { 33, 70 }):to(dt)
            local b = randn(dev, 42, tb == 1 and { 45, 70 } or { 70, 45 }):to(dt)
            if ta == 1 then a = a:t() end
            if tb == 1 then b = b:t() end
            return host(a:matmul(b))
          end)
        end
      end
    end
    case("matmul of a strided (non-BLAS) view", 1e-10, function(dev)
      local a = randn(dev, 43, { 20, 2, 30 }):select(2, 1)
      return host(a:matmul(randn(dev, 44, { 30, 17 })))
    end)
    for _, bias in ipairs({ true, false }) do
      case("Dense forward and backward, bias=" .. tostring(bias), 1e-10, function(dev)
        local x, w = randn(dev, 45, { 32, 120 }), randn(dev, 46, { 84, 120 }, 0.1)
        local b = bias and randn(dev, 47, { 84 }) or nil
        local out = empty(dev, { 32, 84 })
        K.dense_forward(out, x, w, b)
        local go = randn(dev, 48, { 32, 84 })
        local gx, gw, gb = empty(dev, { 32, 120 }), randn(dev, 49, { 84, 120 }), bias and randn(dev, 50, { 84 }) or nil
        K.dense_backward(gx, gw, gb, go, x, w) -- gw, gb accumulate into their values
        if bias then return host(out, gx, gw, gb) end
        return host(out, gx, gw)
      end)
    end
  end)

  describe("Conv2d (cuDNN)", function()
    local convs = {
      { "LeNet conv1 5x5", 16, 1, 6, 5, 32, 1, { 0, 0, 0, 0 }, 1, 1 },
      { "3x3 pad 1 stride 1", 8, 16, 32, 3, 14, 1, { 1, 1, 1, 1 }, 1, 1 },
      { "7x7 stride 2 pad 3 (ResNet stem)", 4, 3, 16, 7, 32, 2, { 3, 3, 3, 3 }, 1, 1 },
      { "1x1 stride 2", 4, 32, 64, 1, 14, 2, { 0, 0, 0, 0 }, 1, 1 },
      { "3x3 'same' stride 2 (asymmetric pad 0/1)", 4, 8, 8, 3, 16, 2, { 0, 1, 0, 1 }, 1, 1 },
      { "groups 2, dilation 2", 3, 8, 12, 3, 15, 1, { 2, 2, 2, 2 }, 2, 2 },
    }
    for _, c in ipairs(convs) do
      local name, N, Ci, Co, k, Hs, s, pad, g, dil = unpack(c)
      case("conv2d forward + input/weight/bias gradients: " .. name, 1e-5, function(dev)
        local x, w = randn(dev, 51, { N, Ci, Hs, Hs }), randn(dev, 52, { Co, Ci / g, k, k }, 0.2)
        local b = randn(dev, 53, { Co })
        local Ho = math.floor((Hs + pad[1] + pad[2] - dil * (k - 1) - 1) / s) + 1
        local Wo = math.floor((Hs + pad[3] + pad[4] - dil * (k - 1) - 1) / s) + 1
        local out = empty(dev, { N, Co, Ho, Wo })
        K.conv2d_forward(out, x, w, b, { s, s }, pad, { dil, dil }, g)
        local go = randn(dev, 54, { N, Co, Ho, Wo })
        local gx, gw, gb = empty(dev, { N, Ci, Hs, Hs }), randn(dev, 55, { Co, Ci / g, k, k }), randn(dev, 56, { Co })
        K.conv2d_backward(gx, gw, gb, go, x, w, { s, s }, pad, { dil, dil }, g)
        return host(out, gx, gw, gb)
      end)
    end
  end)

  describe("BatchNorm, ReLU, pooling, softmax, cross-entropy", function()
    for _, training in ipairs({ true, false }) do
      case("BatchNorm2d forward/backward, moving statistics, training=" .. tostring(training), 1e-12, function(dev)
        local x = randn(dev, 61, { 8, 5, 6, 7 }, 3)
        local gamma, beta = randn(dev, 62, { 5 }), randn(dev, 63, { 5 })
        local mm, mv = randn(dev, 64, { 5 }), randn(dev, 65, { 5 }):abs()
        local out, sm, si = empty(dev, { 8, 5, 6, 7 }), empty(dev, { 5 }), empty(dev, { 5 })
        K.batchnorm_forward(out, sm, si, x, gamma, beta, mm, mv, training, true, 0.9, 1e-5)
        local go = randn(dev, 66, { 8, 5, 6, 7 })
        local gx, gg, gb = empty(dev, { 8, 5, 6, 7 }), randn(dev, 67, { 5 }), randn(dev, 68, { 5 })
        K.batchnorm_backward(gx, gg, gb, go, x, gamma, sm, si, training)
        return host(out, sm, si, mm, mv, gx, gg, gb)
      end)
    end
    case("ReLU forward/backward", 0, function(dev)
      local x = randn(dev, 71, { 4000 })
      local y, gx = empty(dev, { 4000 }), empty(dev, { 4000 })
      K.relu_forward(y, x)
      K.relu_backward(gx, randn(dev, 72, { 4000 }), y)
      return host(y, gx)
    end)
    for _, p in ipairs({ { { 2, 2 }, { 2, 2 }, { 0, 0, 0, 0 } }, { { 3, 3 }, { 2, 2 }, { 1, 1, 1, 1 } },
      { { 3, 2 }, { 1, 2 }, { 0, 1, 1, 0 } } }) do
      local tag = ("k%dx%d s%dx%d pad %d,%d,%d,%d"):format(p[1][1], p[1][2], p[2][1], p[2][2], unpack(p[3]))
      local function geom()
        local Ho = math.floor((12 + p[3][1] + p[3][2] - p[1][1]) / p[2][1]) + 1
        local Wo = math.floor((11 + p[3][3] + p[3][4] - p[1][2]) / p[2][2]) + 1
        return Ho, Wo
      end
      case("MaxPool2d forward (values, argmax) and backward " .. tag, 1e-12, function(dev)
        local Ho, Wo = geom()
        local x = randn(dev, 73, { 3, 4, 12, 11 })
        local out, am = empty(dev, { 3, 4, Ho, Wo }), empty(dev, { 3, 4, Ho, Wo }, "int32")
        K.maxpool_forward(out, am, x, p[1], p[2], p[3])
        local gx = empty(dev, { 3, 4, 12, 11 })
        K.maxpool_backward(gx, randn(dev, 74, { 3, 4, Ho, Wo }), am)
        return host(out, am, gx)
      end)
      for _, cp in ipairs({ true, false }) do
        case(("AvgPool2d forward/backward %s count_pad=%s"):format(tag, tostring(cp)), 1e-12, function(dev)
          local Ho, Wo = geom()
          local x = randn(dev, 75, { 3, 4, 12, 11 })
          local out, gx = empty(dev, { 3, 4, Ho, Wo }), empty(dev, { 3, 4, 12, 11 })
          K.avgpool_forward(out, x, p[1], p[2], p[3], cp)
          K.avgpool_backward(gx, randn(dev, 76, { 3, 4, Ho, Wo }), p[1], p[2], p[3], cp)
          return host(out, gx)
        end)
      end
    end
    case("global average pool forward/backward", 1e-12, function(dev)
      local x = randn(dev, 77, { 6, 10, 7, 7 })
      local out, gx = empty(dev, { 6, 10 }), empty(dev, { 6, 10, 7, 7 })
      K.global_avgpool_forward(out, x)
      K.global_avgpool_backward(gx, randn(dev, 78, { 6, 10 }))
      return host(out, gx)
    end)
    case("softmax", 1e-12, function(dev)
      local out = empty(dev, { 33, 1000 })
      K.softmax(out, randn(dev, 79, { 33, 1000 }, 5))
      return host(out)
    end)
    local xents = {
      { name = "sparse", a = 1, b = 0 },
      { name = "sparse, class weights, ignore_index 2, smoothing", weighted = true, ignore = 2, a = 0.9, b = 0.01 },
      { name = "dense labels", dense = true, a = 1, b = 0 },
    }
    for _, c in ipairs(xents) do
      local name, dense, weighted, ignore, a, b = c.name, c.dense, c.weighted, c.ignore, c.a, c.b
      case("softmax cross-entropy forward/backward, " .. name, 1e-12, function(dev)
        local N, C = 37, 10
        local logits = randn(dev, 81, { N, C }, 3)
        local lab = dense and randn(dev, 82, { N, C }):abs() or labels(dev, N, C, 83)
        local w = weighted and randn(dev, 84, { C }):abs() or nil
        local loss, rw, prob = empty(dev, { N }), empty(dev, { N }), empty(dev, { N, C })
        K.cross_entropy_forward(loss, rw, prob, logits, lab, w, ignore, a, b)
        local gx = empty(dev, { N, C })
        K.cross_entropy_backward(gx, prob, lab, w, randn(dev, 85, { N }), ignore, a, b, 1 / N)
        return host(loss, rw, prob, gx)
      end)
    end
    it("a label out of range is the CPU's one-line error", function()
      local function err(dev)
        local ok, e = pcall(K.xent_forward, empty(dev, { 3 }), empty(dev, { 3, 4 }), randn(dev, 1, { 3, 4 }),
          spore.tensor({ 0, 7, 1 }, "int32"):to(dev))
        assert.is_false(ok)
        return tostring(e)
      end
      assert.are.equal(err("cpu"), err(GPU))
    end)
  end)

  describe("optimizer updates over flat buffers", function()
    local n = 100003
    case("Momentum (nesterov off/on, weight decay, loss scale)", 1e-12, function(dev)
      local p, v, g = randn(dev, 91, { n }), randn(dev, 92, { n }), randn(dev, 93, { n })
      K.momentum_update(p, v, g, 0.01, 0.9, 1e-4, 128, false)
      K.momentum_update(p, v, g, 0.01, 0.9, 0, 1, true)
      return host(p, v)
    end)
    case("SGD (first step, dampening, nesterov)", 1e-12, function(dev)
      local p, a, g = randn(dev, 94, { n }), zeros(dev, { n }), randn(dev, 95, { n })
      K.sgd_update(p, a, g, 0.1, 0.9, 0.1, 1e-4, 1, false, true)
      K.sgd_update(p, a, g, 0.1, 0.9, 0.1, 1e-4, 1, true, false)
      return host(p, a)
    end)
    case("Adam (and nesterov)", 1e-12, function(dev)
      local p, m, v, g = randn(dev, 96, { n }), zeros(dev, { n }), zeros(dev, { n }), randn(dev, 97, { n })
      K.adam_update(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, 0.9, 0.999, 1e-4, 1, false)
      K.adam_update(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, 0.81, 0.998, 0, 4, true)
      return host(p, m, v)
    end)
    case("AdamWeightDecay", 1e-12, function(dev)
      local p, m, v, g = randn(dev, 98, { n }), zeros(dev, { n }), zeros(dev, { n }), randn(dev, 99, { n })
      K.adamw_update(p, m, v, g, 1e-3, 0.9, 0.999, 1e-6, 0.01)
      return host(p, m, v)
    end)
    case("Adam AMSGrad and gradient centralisation (host path)", 0, function(dev)
      local p, m, v, h, g = randn(dev, 100, { 60, 50 }), zeros(dev, { 60, 50 }), zeros(dev, { 60, 50 }),
        zeros(dev, { 60, 50 }), randn(dev, 101, { 60, 50 })
      K.adam_amsgrad_update(p, m, v, h, g, 1e-3, 0.9, 0.999, 1e-8, 0.9, 0.999, 0, 1)
      K.grad_centralize(g, p, 1e-4, 60)
      return host(p, m, v, h, g)
    end)
    case("random fills and dropout on the device draw the CPU's stream", 0, function(dev)
      spore.manual_seed(5)
      local u = spore.empty({ 1000 }, "float32", dev):uniform_(-1, 1)
      local t = spore.empty({ 1000 }, "float32", dev):trunc_normal_(0, 0.02)
      local out, mask = empty(dev, { 1000 }), empty(dev, { 1000 })
      K.dropout_forward(out, mask, u, 0.3)
      return host(u, t, out, mask)
    end)
  end)

  describe("networks", function()
    case("LeNet5: 3 Momentum steps of Model:train, parameters after", 1e-6, function(dev)
      local prev = spore.set_default_device(dev)
      spore.manual_seed(1)
      local net = spore.models.lenet5()
      local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
      local opt = spore.optim.Momentum(net:trainable_params(), 0.01, 0.9)
      local images = randn("cpu", 111, { 48, 32, 32, 1 })
      local ds = spore.data.from_tensors(images, labels("cpu", 48, 10, 112),
        { batch = 16, shuffle = false, transforms = { spore.data.HWC2CHW() }, device = dev })
      spore.Model(net, loss, opt):train(1, ds, { progress = false })
      spore.set_default_device(prev)
      assert.are.equal(dev == "cpu" and "cpu" or GPU0, net:trainable_params()[1].data:device())
      local r = {}
      for i, p in ipairs(net:trainable_params()) do r[i] = p.data:to("cpu") end
      return r
    end)
  end)
end)
