--- bindings/ffi/nn.lua — the nn kernels (engine/cpu) for lua/spore/nn, models and optim.
-- Every function takes Tensors (nil for an optional one) and raises with the
-- engine's message on a shape or dtype error. Outputs come first, as in C.
local lib = require("ffi.lib")
local T = require("ffi.tensor")
local C, check = lib.C, lib.check

local M = {}
local H = T.handle
local function h(t) if t == nil then return nil end return H(t) end

--- Conv2d: pad = {top, bottom, left, right}, stride = {sh, sw}, dil = {dh, dw}.
function M.conv2d_forward(out, x, w, b, stride, pad, dil, groups)
  check(C.sp_conv2d_forward(H(out), H(x), H(w), h(b), stride[1], stride[2], pad[1], pad[2], pad[3], pad[4],
    dil[1], dil[2], groups), "Conv2d")
end
function M.conv2d_backward(gx, gw, gb, gout, x, w, stride, pad, dil, groups)
  check(C.sp_conv2d_backward(h(gx), h(gw), h(gb), H(gout), H(x), H(w), stride[1], stride[2], pad[1], pad[2],
    pad[3], pad[4], dil[1], dil[2], groups), "Conv2d backward")
end
function M.dense_forward(out, x, w, b) check(C.sp_dense_forward(H(out), H(x), H(w), h(b)), "Dense") end
function M.dense_backward(gx, gw, gb, gout, x, w)
  check(C.sp_dense_backward(h(gx), h(gw), h(gb), H(gout), H(x), H(w)), "Dense backward")
end
--- The bfloat16 twins (Model amp_level "O2"): same arguments, bf16 operands, float32 sums.
function M.conv2d_forward_bf16(out, x, w, b, stride, pad, dil, groups)
  check(C.sp_conv2d_forward_bf16(H(out), H(x), H(w), h(b), stride[1], stride[2], pad[1], pad[2], pad[3], pad[4],
    dil[1], dil[2], groups), "Conv2d (bfloat16)")
end
function M.conv2d_backward_bf16(gx, gw, gb, gout, x, w, stride, pad, dil, groups)
  check(C.sp_conv2d_backward_bf16(h(gx), h(gw), h(gb), H(gout), H(x), H(w), stride[1], stride[2], pad[1], pad[2],
    pad[3], pad[4], dil[1], dil[2], groups), "Conv2d backward (bfloat16)")
end
function M.dense_forward_bf16(out, x, w, b) check(C.sp_dense_forward_bf16(H(out), H(x), H(w), h(b)), "Dense (bfloat16)") end
function M.dense_backward_bf16(gx, gw, gb, gout, x, w)
  check(C.sp_dense_backward_bf16(h(gx), h(gw), h(gb), H(gout), H(x), H(w)), "Dense backward (bfloat16)")
end
--- true when the CPU runs the bf16 kernels natively (AVX512_BF16).
function M.cpu_has_bf16() return C.sp_cpu_has_bf16() == 1 end
--- Eval-mode fusion: out = [relu](BatchNorm_eval(conv(x, w) + b) [+ residual]) in one kernel
-- (gamma, beta, mmean, mvar: the BatchNorm's tensors; residual may be nil).
function M.conv2d_bn_forward(out, x, w, b, gamma, beta, mmean, mvar, eps, residual, relu, stride, pad, dil, groups)
  check(C.sp_conv2d_bn_forward(H(out), H(x), H(w), h(b), H(gamma), H(beta), H(mmean), H(mvar), eps, h(residual),
    relu and 1 or 0, stride[1], stride[2], pad[1], pad[2], pad[3], pad[4], dil[1], dil[2], groups), "Conv2d+BatchNorm2d")
end
--- the same with the convolution in bfloat16 (amp_level "O2")
function M.conv2d_bn_forward_bf16(out, x, w, b, gamma, beta, mmean, mvar, eps, residual, relu, stride, pad, dil,
                                  groups)
  check(C.sp_conv2d_bn_forward_bf16(H(out), H(x), H(w), h(b), H(gamma), H(beta), H(mmean), H(mvar), eps,
    h(residual), relu and 1 or 0, stride[1], stride[2], pad[1], pad[2], pad[3], pad[4], dil[1], dil[2], groups),
    "Conv2d+BatchNorm2d (bfloat16)")
end
--- true when x's device has the fused kernel above (bf16: the bfloat16 one)
function M.conv2d_bn_fusable(x, bf16) return C.sp_conv2d_bn_fusable(H(x), bf16 and 1 or 0) == 1 end
--- true when x's device runs this convolution on channels-last operands in place (oneDNN)
function M.conv2d_channels_last_native(x, w, stride, pad, dil, groups)
  return C.sp_conv2d_channels_last_native(H(x), H(w), stride[1], stride[2], pad[1], pad[2], pad[3], pad[4], dil[1],
    dil[2], groups) == 1
end
--- BatchNorm, then + residual (optional) and ReLU (relu true), in one kernel.
function M.batchnorm_act_forward(out, smean, sinv, x, gamma, beta, mmean, mvar, training, update, momentum, eps,
                                 residual, relu)
  check(C.sp_batchnorm_act_forward(H(out), H(smean), H(sinv), H(x), H(gamma), H(beta), H(mmean), H(mvar),
    training and 1 or 0, update and 1 or 0, momentum, eps, h(residual), relu and 1 or 0), "BatchNorm2d+ReLU")
end
--- BatchNorm's backward from the gradient of a following ReLU's output y.
function M.batchnorm_relu_backward(gx, ggamma, gbeta, gout, y, x, gamma, smean, sinv, training)
  check(C.sp_batchnorm_relu_backward(h(gx), h(ggamma), h(gbeta), H(gout), H(y), H(x), H(gamma), H(smean), H(sinv),
    training and 1 or 0), "BatchNorm2d+ReLU backward")
end
function M.batchnorm_act_fusable(x) return C.sp_batchnorm_act_fusable(H(x)) == 1 end
function M.batchnorm_forward(out, smean, sinv, x, gamma, beta, mmean, mvar, training, update, momentum, eps)
  check(C.sp_batchnorm_forward(H(out), H(smean), H(sinv), H(x), H(gamma), H(beta), H(mmean), H(mvar),
    training and 1 or 0, update and 1 or 0, momentum, eps), "BatchNorm2d")
end
function M.batchnorm_backward(gx, ggamma, gbeta, gout, x, gamma, smean, sinv, training)
  check(C.sp_batchnorm_backward(h(gx), h(ggamma), h(gbeta), H(gout), H(x), H(gamma), H(smean), H(sinv),
    training and 1 or 0), "BatchNorm2d backward")
end
function M.relu_forward(out, x) check(C.sp_unary(H(out), H(x), C.SP_UN_RELU), "ReLU") end
function M.relu_backward(gx, gout, y) check(C.sp_relu_backward(H(gx), H(gout), H(y)), "ReLU backward") end
function M.add_relu_backward(gx, a, b, y) check(C.sp_add_relu_backward(H(gx), H(a), H(b), H(y)), "add + ReLU backward") end
function M.dropout_forward(out, mask, x, p)
  check(C.sp_dropout_forward(H(out), H(mask), H(x), p, T.rng_state()), "Dropout")
end
-- elementwise helpers: the one elementwise API (sp_binary), same shapes here
function M.mul(out, a, b) check(C.sp_binary(H(out), H(a), H(b), C.SP_OP_MUL), "mul") end
function M.add(out, a, b, relu) check(C.sp_binary(H(out), H(a), H(b), relu and C.SP_OP_ADD_RELU or C.SP_OP_ADD), "add") end
function M.accumulate(dst, src) check(C.sp_binary(H(dst), H(dst), H(src), C.SP_OP_ADD), "accumulate") end
function M.maxpool_forward(out, argmax, x, k, s, p)
  check(C.sp_maxpool2d_forward(H(out), H(argmax), H(x), k[1], k[2], s[1], s[2], p[1], p[2], p[3], p[4]), "MaxPool2d")
end
function M.maxpool_backward(gx, gout, argmax)
  check(C.sp_maxpool2d_backward(H(gx), H(gout), H(argmax)), "MaxPool2d backward")
end
function M.avgpool_forward(out, x, k, s, p, count_pad)
  check(C.sp_avgpool2d_forward(H(out), H(x), k[1], k[2], s[1], s[2], p[1], p[2], p[3], p[4], count_pad and 1 or 0),
    "AvgPool2d")
end
function M.avgpool_backward(gx, gout, k, s, p, count_pad)
  check(C.sp_avgpool2d_backward(H(gx), H(gout), k[1], k[2], s[1], s[2], p[1], p[2], p[3], p[4], count_pad and 1 or 0),
    "AvgPool2d backward")
end
function M.global_avgpool_forward(out, x) check(C.sp_global_avgpool_forward(H(out), H(x)), "global mean") end
function M.global_avgpool_backward(gx, gout) check(C.sp_global_avgpool_backward(H(gx), H(gout)), "global mean backward") end
function M.softmax(out, x) check(C.sp_softmax_forward(H(out), H(x)), "softmax") end
function M.xent_forward(loss, prob, logits, labels)
  check(C.sp_softmax_xent_forward(H(loss), H(prob), H(logits), H(labels)), "SoftmaxCrossEntropyWithLogits")
end
function M.xent_backward(gx, prob, labels, gloss, scale)
  check(C.sp_softmax_xent_backward(H(gx), H(prob), H(labels), h(gloss), scale), "SoftmaxCrossEntropyWithLogits backward")
end
-- ignore_index nil: nothing is ignored (INT64_MIN never matches an int32 label)
local NO_IGNORE = -2 ^ 63
--- Weighted, smoothed cross-entropy (spore.h sp_cross_entropy_forward): what names the
-- loss class in errors.
function M.cross_entropy_forward(loss, row_weight, prob, logits, labels, weight, ignore_index, a, b, what)
  check(C.sp_cross_entropy_forward(H(loss), h(row_weight), H(prob), H(logits), H(labels), h(weight),
    ignore_index or NO_IGNORE, a, b), what or "CrossEntropyLoss")
end
function M.cross_entropy_backward(gx, prob, labels, weight, gloss, ignore_index, a, b, scale, what)
  check(C.sp_cross_entropy_backward(H(gx), H(prob), H(labels), h(weight), h(gloss), ignore_index or NO_IGNORE,
    a, b, scale), (what or "CrossEntropyLoss") .. " backward")
end
function M.momentum_update(p, v, g, lr, u, wd, ls, nesterov)
  check(C.sp_momentum_update(H(p), H(v), H(g), lr, u, wd, ls, nesterov and 1 or 0), "Momentum")
end
function M.sgd_update(p, acc, g, lr, u, damp, wd, ls, nesterov, first)
  check(C.sp_sgd_update(H(p), H(acc), H(g), lr, u, damp, wd, ls, nesterov and 1 or 0, first and 1 or 0), "SGD")
end
function M.adam_update(p, m, v, g, lr, b1, b2, eps, b1p, b2p, wd, ls, nesterov)
  check(C.sp_adam_update(H(p), H(m), H(v), H(g), lr, b1, b2, eps, b1p, b2p, wd, ls, nesterov and 1 or 0), "Adam")
end
function M.adam_amsgrad_update(p, m, v, vhat, g, lr, b1, b2, eps, b1p, b2p, wd, ls)
  check(C.sp_adam_amsgrad_update(H(p), H(m), H(v), H(vhat), H(g), lr, b1, b2, eps, b1p, b2p, wd, ls), "Adam (use_amsgrad)")
end
function M.adamw_update(p, m, v, g, lr, b1, b2, eps, wd)
  check(C.sp_adamw_update(H(p), H(m), H(v), H(g), lr, b1, b2, eps, wd), "AdamWeightDecay")
end
function M.grad_centralize(g, p, wd, rows)
  check(C.sp_grad_centralize(H(g), p and H(p) or nil, wd or 0, rows), "grad_centralization")
end

-- Conv/pool geometry (engine/core/geometry.c): MindSpore's pad_mode rules live in C only.
local ffi = lib.ffi
local PAD_MODE = { same = C.SP_PAD_SAME, valid = C.SP_PAD_VALID, pad = C.SP_PAD_PAD }
local g_pad, g_pads, g_oh, g_ow = ffi.new("int[4]"), ffi.new("int[4]"), ffi.new("int64_t[1]"), ffi.new("int64_t[1]")
-- who: the layer's name for messages, a string or a module (its __repr, built only on error)
local function name_of(who)
  if type(who) == "table" then return who:__repr() end
  return who
end
local function geometry_args(who, mode, padding)
  local m = PAD_MODE[mode]
  if m == nil then error(name_of(who) .. ": pad_mode must be 'same', 'valid' or 'pad', got '" .. tostring(mode) .. "'", 4) end
  if m == C.SP_PAD_PAD then
    if type(padding) ~= "table" then error(name_of(who) .. ": pad_mode 'pad' needs padding {top, bottom, left, right}", 4) end
    for i = 1, 4 do
      if type(padding[i]) ~= "number" then
        error(name_of(who) .. ": padding must be a number or {top, bottom, left, right}", 4)
      end
      g_pad[i - 1] = padding[i]
    end
    return m, g_pad
  end
  return m, nil
end
local function geometry_result()
  return tonumber(g_oh[0]), tonumber(g_ow[0]), { g_pads[0], g_pads[1], g_pads[2], g_pads[3] }
end

--- Conv2d geometry for an input H×W: returns Ho, Wo, {top, bottom, left, right}.
-- k, stride, dil = {h, w}; mode "same" | "valid" | "pad"; padding {t, b, l, r} (mode "pad").
-- who names the layer in the error message (a string, or the module itself).
function M.conv2d_geometry(H, W, k, stride, dil, mode, padding, who)
  local m, p = geometry_args(who or "Conv2d", mode, padding)
  local st = C.sp_conv2d_geometry(H, W, k[1], k[2], stride[1], stride[2], dil[1], dil[2], m, p, g_oh, g_ow, g_pads)
  if st ~= 0 then check(st, name_of(who or "Conv2d")) end
  return geometry_result()
end

--- Pool2d geometry (dilation 1; "pad" needs each pad in [0, kernel)): Ho, Wo, {t, b, l, r}.
function M.pool2d_geometry(H, W, k, stride, mode, padding, who)
  local m, p = geometry_args(who or "pooling", mode, padding)
  local st = C.sp_pool2d_geometry(H, W, k[1], k[2], stride[1], stride[2], m, p, g_oh, g_ow, g_pads)
  if st ~= 0 then check(st, name_of(who or "pooling")) end
  return geometry_result()
end
return M
