--- spore.ckpt.rules — ready-made renaming rule lists for load_param_into_net's `rename`
-- option and scripts/convert.lua's `--rename NAME`.
--
-- A rule list is applied in order (spore.ckpt.policy.rename); a function rule is called as
-- rule(name, dict) where dict is the whole checkpoint being renamed (keys = the original
-- names), so a rule can look at sibling keys. That is how BatchNorm layers are told apart:
-- `X.weight` is a BatchNorm scale only when `X.running_mean` is in the same checkpoint.
--
--   local d = ckpt.load_checkpoint("resnet.pth")
--   ckpt.load_param_into_net(net, d, { rename = ckpt.rules.torch_to_mindspore })
--   ckpt.save_checkpoint(list_of_renamed, "x.pth") -- (writing .pth is not supported)
--
-- torch_to_mindspore: for a layer X with X.running_mean in the dict,
--   X.weight -> X.gamma, X.bias -> X.beta, X.running_mean -> X.moving_mean,
--   X.running_var -> X.moving_variance; any `*.num_batches_tracked` is dropped.
--   Conv and Linear names/layouts are the same in both frameworks.
-- mindspore_to_torch: the reverse (X.gamma/X.beta/X.moving_mean/X.moving_variance ->
--   X.weight/X.bias/X.running_mean/X.running_var); no num_batches_tracked is invented.
local R = {}

local BN_T2M = { weight = "gamma", bias = "beta", running_mean = "moving_mean", running_var = "moving_variance" }
local BN_M2T = { gamma = "weight", beta = "bias", moving_mean = "running_mean", moving_variance = "running_var" }

local function split(name)
  local layer, leaf = name:match("^(.*)%.([^%.]+)$")
  if layer then return layer, leaf end
  return nil, name
end

local function has(dict, key)
  if dict == nil then return false end
  return rawget(dict, key) ~= nil or dict[key] ~= nil
end

--- rule(name, dict) -> new name | nil: torch BatchNorm names to MindSpore's; drops num_batches_tracked.
function R.torch_bn_rule(name, dict)
  local layer, leaf = split(name)
  if leaf == "num_batches_tracked" then return nil end
  local to = BN_T2M[leaf]
  if to and layer then
    if leaf == "running_mean" or leaf == "running_var" or has(dict, layer .. ".running_mean") then
      return layer .. "." .. to
    end
    if dict == nil then
      error("rules.torch_to_mindspore: rule called without the checkpoint dict (needed to tell BatchNorm "
        .. "weights from conv/linear weights); pass it as rename(name, rules, dict)", 0)
    end
  end
  return name
end

--- rule(name) -> MindSpore BatchNorm/LayerNorm names to torch's.
function R.mindspore_bn_rule(name)
  local layer, leaf = split(name)
  local to = BN_M2T[leaf]
  if to and layer then return layer .. "." .. to end
  return name
end

R.torch_to_mindspore = { R.torch_bn_rule }
R.mindspore_to_torch = { R.mindspore_bn_rule }

--- Rename every key of a dict with a rule list; returns a new ordered dict (spore.ckpt.dict)
-- and the list of dropped names. Errors when two names map to the same new name.
function R.apply(dict, rules)
  local ckpt = require("spore.ckpt")
  local P = require("spore.ckpt.policy")
  local list, seen, dropped = {}, {}, {}
  for _, k in ipairs(ckpt.keys(dict)) do
    local nk = P.rename(k, rules, dict)
    if nk == nil then dropped[#dropped + 1] = k
    else
      if seen[nk] then error(string.format("rename rules map both '%s' and '%s' to '%s'", seen[nk], k, nk), 0) end
      seen[nk] = k
      list[#list + 1] = { nk, dict[k] }
    end
  end
  return ckpt.dict(list), dropped
end

return R
