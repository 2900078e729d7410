--- spore.train.callbacks — MindSpore's training callbacks.
-- A callback is a table with any of the methods on_train_begin(ctx),
-- on_train_epoch_begin(ctx), on_train_step_begin(ctx), on_train_step_end(ctx),
-- on_train_epoch_end(ctx), on_train_end(ctx) (a plain function is called at step end).
-- ctx (MindSpore's cb_params; ctx:original_args() returns ctx itself):
--   epoch_num, cur_epoch_num, cur_step_num (global, 1-based), batch_num (steps per
--   epoch), step_in_epoch, net_outputs (the step's loss, a number), batch_size,
--   train_network, network, optimizer, loss_fn, train_dataset, initial_epoch;
--   ctx:request_stop() ends training after the current step.
-- Every callback that prints takes opts.print (a function(line)); default: stdout.
-- One class per file under spore/train/callbacks/ (LossMonitor, TimeMonitor, ProgressBar,
-- CheckpointConfig, ModelCheckpoint); this module re-exports them and holds the helpers
-- they share (format_loss, default_print, unique_prefix, training_state, directory helpers).
local f32 = require("ffi.tensor").to_float32

local M = {}

-- true while a ProgressBar status line is on stdout
M.bar_active = false

--- The default print of the callbacks: one line to stdout, above the status line of a
-- ProgressBar if one is shown (ProgressBar.log: clear, print, redraw).
function M.default_print(line)
  require("spore.train.callbacks.progress_bar").log(line, io.stdout)
end

--- Shortest decimal that reads back as the same float32 (numpy's str of a float32).
function M.format_loss(x)
  if x ~= x then return "nan" end
  if x == math.huge then return "inf" end
  if x == -math.huge then return "-inf" end
  local f = f32(x)
  for p = 1, 9 do
    local s = string.format("%." .. p .. "g", f)
    if f32(tonumber(s)) == f then
      if not s:find("[%.e]") then s = s .. ".0" end
      return s
    end
  end
  return string.format("%.9g", f)
end

---------------------------------------------------------------- files (ModelCheckpoint)
local function lfs() local ok, m = pcall(require, "lfs") if ok then return m end end

function M.list_dir(dir)
  local out = {}
  local L = lfs()
  if L then
    local ok = pcall(function() for f in L.dir(dir) do out[#out + 1] = f end end)
    if ok then return out end
    return {}
  end
  local p = io.popen('ls -1a "' .. dir:gsub('"', '\\"') .. '" 2>/dev/null')
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

function M.mtime(path)
  local L = lfs()
  if L then return L.attributes(path, "modification") or 0 end
  return 0
end

-- a regular file (not a directory named like a checkpoint); true when lfs is missing
function M.is_file(path)
  local L = lfs()
  if L then return L.attributes(path, "mode") == "file" end
  return true
end

function M.mkdir_p(dir)
  local L = lfs()
  if L and L.attributes(dir, "mode") == "directory" then return end
  local acc = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    acc = acc .. "/" .. part
    if L then
      if not L.attributes(acc, "mode") then
        local ok, err = L.mkdir(acc)
        if not ok and L.attributes(acc, "mode") ~= "directory" then
          error("ModelCheckpoint: cannot create directory " .. acc .. ": " .. tostring(err), 0)
        end
      end
    end
  end
  if not L then os.execute('mkdir -p "' .. dir:gsub('"', '\\"') .. '"') end
end

--- MindSpore's _chg_ckpt_file_name_if_same_exist: prefix → prefix_N when files
-- "<prefix>-*.ckpt" or "<prefix>_K-*.ckpt" already exist in dir.
function M.unique_prefix(dir, prefix)
  local suffix = 0
  local n = #prefix
  for _, f in ipairs(M.list_dir(dir)) do
    if f:sub(-5) == ".ckpt" and not f:find("_breakpoint%.ckpt$") and f:sub(1, n) == prefix then
      local nxt = f:sub(n + 1, n + 1)
      if nxt ~= "" and not nxt:match("%a") then
        local rest = f:sub(n + 1)
        local i = rest:find("-", 1, true)
        if i == 1 then suffix = math.max(suffix, 1)
        elseif i then
          local num = rest:sub(2, i - 1)
          if num:match("^%d+$") then suffix = math.max(suffix, tonumber(num) + 1) end
        end
      end
    end
  end
  if suffix ~= 0 then return prefix .. "_" .. suffix end
  return prefix
end

--- The training network's state as {name, Parameter} pairs: every network
-- parameter (frozen ones and BatchNorm statistics included), then the optimizer's
-- own state (moments, learning_rate, momentum, global_step...), as MindSpore saves
-- its training cell. An optimizer alone lists only the parameters it trains.
function M.training_state(net, opt)
  local list, seen = {}, {}
  for _, owner in ipairs({ net or false, opt or false }) do
    if owner then
      for _, kv in ipairs(owner:parameters_and_names()) do
        if not seen[kv[1]] then list[#list + 1] = kv; seen[kv[1]] = true end
      end
    end
  end
  return list
end

---------------------------------------------------------------- the classes
M.LossMonitor = require("spore.train.callbacks.loss_monitor")
M.TimeMonitor = require("spore.train.callbacks.time_monitor")
M.ProgressBar = require("spore.train.callbacks.progress_bar")
M.CheckpointConfig = require("spore.train.callbacks.checkpoint_config")
M.ModelCheckpoint = require("spore.train.callbacks.model_checkpoint")
-- the classes under their former names (the constructors and the classes are one now)
M.LossMonitor_class, M.TimeMonitor_class, M.ModelCheckpoint_class = M.LossMonitor, M.TimeMonitor, M.ModelCheckpoint
return M
