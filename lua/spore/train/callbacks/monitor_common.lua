--- spore.train.callbacks.monitor_common — what EarlyStopping and ReduceLROnPlateau share
-- (MindSpore 2.10's _early_stop.py / _reduce_lr_on_plateau.py): the monitored value and the
-- improvement test.
local M = {}

-- MindSpore's _smaller_better_metrics
M.SMALLER_BETTER = { hausdorff_distance = true, mae = true, mse = true, loss = true, perplexity = true,
  mean_surface_distance = true, root_mean_square_distance = true, eval_loss = true }

function M.warn(line) io.stderr:write("[WARNING] ", line, "\n") end

--- min mode? ("min", or "auto" with a smaller-is-better name)
function M.is_min(mode, monitor) return mode == "min" or (mode == "auto" and M.SMALLER_BETTER[monitor] == true) end

--- The monitored value at an epoch's end, or nil: "loss" is the last step's loss, any other
-- name is looked up in ctx.eval_results (fit's evaluation). As MindSpore (`if monitor_value`),
-- a value of 0 counts as missing.
function M.value(ctx, monitor, who)
  local v, cands
  if monitor == "loss" then
    v = ctx.net_outputs
    if type(v) == "table" then v = v[1] end
    if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then M.warn("Invalid " .. monitor .. ".") end
  else
    cands = ctx.eval_results or {}
    v = cands[monitor]
  end
  if v == nil then
    local keys = { "loss" }
    for k in pairs(cands or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    M.warn(("%s is conditioned on %s, which is not available. Available choices are: {%s}")
      :format(who, monitor, table.concat(keys, ", ")))
  end
  if type(v) == "table" then error(who .. " only supports scalar monitor now.", 0) end
  if v == 0 or v == nil then return nil end
  return v
end

return M
