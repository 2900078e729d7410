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
local B = require("ffi.data")
local f32 = require("ffi.tensor").to_float32

local M = {}

local bar_active = false -- a ProgressBar line is on screen: clear it before printing

local function default_print(line)
  if bar_active then io.stdout:write("\r\27[K") end
  io.stdout:write(line, "\n")
  io.stdout:flush()
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

---------------------------------------------------------------- LossMonitor
local LossMonitor = {}
LossMonitor.__index = LossMonitor
--- LossMonitor(per_print_times=1[, opts{print=}]): prints
-- "epoch: E step: S, loss is L" (S within the epoch) every per_print_times steps;
-- raises "epoch: E step: S. Invalid loss, terminating training." on NaN/Inf.
function M.LossMonitor(per_print_times, opts)
  per_print_times = per_print_times or 1
  if type(per_print_times) ~= "number" or per_print_times < 0 or per_print_times ~= math.floor(per_print_times) then
    error("LossMonitor: per_print_times must be a non-negative integer", 2)
  end
  return setmetatable({ per_print_times = per_print_times, _last = 0, print = (opts or {}).print or default_print },
    LossMonitor)
end
function LossMonitor:on_train_step_end(ctx)
  local loss = ctx.net_outputs
  local s = (ctx.cur_step_num - 1) % ctx.batch_num + 1
  if loss ~= loss or loss == math.huge or loss == -math.huge then
    error(string.format("epoch: %d step: %d. Invalid loss, terminating training.", ctx.cur_epoch_num, s), 0)
  end
  if self.per_print_times ~= 0 and ctx.cur_step_num - self._last >= self.per_print_times then
    self._last = ctx.cur_step_num
    self.print(string.format("epoch: %d step: %d, loss is %s", ctx.cur_epoch_num, s, M.format_loss(loss)))
  end
end

---------------------------------------------------------------- TimeMonitor
local TimeMonitor = {}
TimeMonitor.__index = TimeMonitor
--- TimeMonitor([data_size][, opts{print=}]): at each epoch end prints
-- "epoch time: X ms, per step time: Y ms" (Y = X / steps per epoch, or data_size).
function M.TimeMonitor(data_size, opts)
  if type(data_size) == "table" then data_size, opts = nil, data_size end
  return setmetatable({ data_size = data_size, print = (opts or {}).print or default_print }, TimeMonitor)
end
function TimeMonitor:on_train_epoch_begin(ctx) self._t0, self._s0 = B.now(), ctx.cur_step_num end
function TimeMonitor:on_train_epoch_end(ctx)
  local ms = (B.now() - (self._t0 or B.now())) * 1000
  -- MindSpore divides by batch_num (steps per epoch) when it has one, else data_size
  local steps = (ctx.batch_num and ctx.batch_num > 0) and ctx.batch_num or self.data_size
  if type(steps) ~= "number" or steps < 1 then error("TimeMonitor: step size must be a positive integer", 0) end
  self.last_epoch_ms, self.last_step_ms = ms, ms / steps
  self.print(string.format("epoch time: %5.3f ms, per step time: %5.3f ms", ms, ms / steps))
end

---------------------------------------------------------------- ProgressBar
local ProgressBar = {}
ProgressBar.__index = ProgressBar
--- ProgressBar([opts{out=file, width=30, interval=0.1}]): one redrawn line per
-- epoch with step, images/s, ETA and the last loss. Model:train adds one by
-- itself when stdout is a terminal (opts.progress=false turns that off).
function M.ProgressBar(opts)
  opts = opts or {}
  return setmetatable({ out = opts.out or io.stdout, width = opts.width or 30, interval = opts.interval or 0.1 },
    ProgressBar)
end
function ProgressBar:on_train_epoch_begin(ctx)
  self._t0, self._last, self._imgs, self._s0 = B.now(), 0, 0, ctx.cur_step_num
end
local function hms(s)
  s = math.max(0, math.floor(s + 0.5))
  return string.format("%d:%02d:%02d", math.floor(s / 3600), math.floor(s / 60) % 60, s % 60)
end
function ProgressBar:_draw(ctx, final)
  local now = B.now()
  if not final and now - self._last < self.interval then return end
  self._last = now
  local done = ctx.cur_step_num - self._s0
  local total = ctx.batch_num
  local el = now - self._t0
  local frac = total > 0 and math.min(1, done / total) or 1
  local fill = math.floor(frac * self.width)
  local eta = done > 0 and el / done * (total - done) or 0
  self.out:write(string.format("\repoch %d [%s%s] %d/%d %.0f img/s ETA %s loss %s ", ctx.cur_epoch_num,
    string.rep("=", fill), string.rep(" ", self.width - fill), done, total,
    el > 0 and self._imgs / el or 0, hms(eta), M.format_loss(ctx.net_outputs or 0)))
  if final then self.out:write("\n") end
  bar_active = (self.out == io.stdout) and not final
  self.out:flush()
end
function ProgressBar:on_train_step_end(ctx)
  self._imgs = self._imgs + (ctx.batch_size or 0)
  self:_draw(ctx, false)
end
function ProgressBar:on_train_epoch_end(ctx) self:_draw(ctx, true) end
function ProgressBar:on_train_end() bar_active = false end

---------------------------------------------------------------- ModelCheckpoint
--- CheckpointConfig{save_checkpoint_steps=1, keep_checkpoint_max=5,
-- append_info=nil|{"epoch_num","step_num"}, saver=fn}. (MindSpore's time-based
-- options are accepted and ignored.)
function M.CheckpointConfig(o)
  o = o or {}
  local c = {
    save_checkpoint_steps = o.save_checkpoint_steps == nil and 1 or o.save_checkpoint_steps,
    keep_checkpoint_max = o.keep_checkpoint_max == nil and 5 or o.keep_checkpoint_max,
    append_info = o.append_info, saver = o.saver, __config = true,
  }
  for _, k in ipairs(c.append_info or {}) do
    if type(k) ~= "string" and type(k) ~= "table" then error("CheckpointConfig: append_info entries are names or {name=value} tables", 2) end
  end
  return c
end

local function lfs() local ok, m = pcall(require, "lfs") if ok then return m end end

local function list_dir(dir)
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

local function mtime(path)
  local L = lfs()
  if L then return L.attributes(path, "modification") or 0 end
  return 0
end

-- a regular file (not a directory named like a checkpoint); true when lfs is missing
local function is_file(path)
  local L = lfs()
  if L then return L.attributes(path, "mode") == "file" end
  return true
end

local function mkdir_p(dir)
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
  for _, f in ipairs(list_dir(dir)) do
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

local ModelCheckpoint = {}
ModelCheckpoint.__index = ModelCheckpoint
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

--- ModelCheckpoint(prefix="CKP", directory=".", config=CheckpointConfig{}, opts{saver=})
-- Saves "<prefix>-<epoch>_<step_in_epoch>.ckpt" every save_checkpoint_steps steps
-- and once more at the end (unless that step was just saved), the network AND
-- optimizer state (the optimizer is saved when there is one: its
-- parameters_and_names() includes the network weights). An existing
-- "<prefix>-*.ckpt" makes the prefix "<prefix>_N"; only the newest
-- keep_checkpoint_max files (by mtime) are kept, older ones deleted only after the
-- new file is complete. saver(obj, path, {append_dict=})
-- defaults to require("spore").save_checkpoint. Fields after training:
-- .prefix (the one used), .saved (paths, in order), .latest (last path).
function M.ModelCheckpoint(prefix, directory, config, opts)
  if type(prefix) == "table" and directory == nil then -- ModelCheckpoint{prefix=, directory=, config=}
    local t = prefix
    prefix, directory, config, opts = t.prefix, t.directory, t.config, t
  end
  prefix = prefix or "CKP"
  if type(prefix) ~= "string" or prefix:find("/") or prefix == "" then
    error("ModelCheckpoint: prefix must be a non-empty file name prefix (no '/'), got " .. tostring(prefix), 2)
  end
  config = config or M.CheckpointConfig()
  if not config.__config then config = M.CheckpointConfig(config) end
  local saver = (opts and opts.saver) or config.saver
  directory = directory or "."
  -- as MindSpore: the directory is made and the prefix chosen when the callback is built
  mkdir_p(directory)
  return setmetatable({ base_prefix = prefix, prefix = M.unique_prefix(directory, prefix), directory = directory,
    config = config, saver = saver, saved = {}, _seq = 0, _last_triggered = 0, _owned = {} }, ModelCheckpoint)
end

-- Saves are counted from the step training starts at, so a resumed run
-- (initial_epoch) keeps saving on the same step boundaries.
function ModelCheckpoint:on_train_begin(ctx)
  self._last_triggered = ctx.cur_step_num
end

-- files "<prefix>-*.ckpt" in the directory, oldest first (mtime, then save order)
function ModelCheckpoint:_files()
  local out = {}
  local pre = self.prefix .. "-"
  for _, f in ipairs(list_dir(self.directory)) do
    local p = self.directory .. "/" .. f
    if f:sub(1, #pre) == pre and f:sub(-5) == ".ckpt" and not f:sub(#pre, -6):find("%a") and is_file(p) then
      out[#out + 1] = { path = p, mtime = mtime(p), seq = self._owned[p] or 0 }
    end
  end
  table.sort(out, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime < b.mtime end
    if a.seq ~= b.seq then return a.seq < b.seq end
    return a.path < b.path
  end)
  return out
end

function ModelCheckpoint:_save(ctx)
  local step = (ctx.cur_step_num - 1) % ctx.batch_num + 1
  local name = string.format("%s-%d_%d.ckpt", self.prefix, ctx.cur_epoch_num, step)
  local path = self.directory .. "/" .. name
  local append
  for _, k in ipairs(self.config.append_info or {}) do
    append = append or {}
    if k == "epoch_num" then append.epoch_num = ctx.cur_epoch_num
    elseif k == "step_num" then append.step_num = ctx.cur_step_num
    elseif type(k) == "table" then for kk, v in pairs(k) do append[kk] = v end
    else error("ModelCheckpoint: unknown append_info entry '" .. tostring(k) .. "'", 0) end
  end
  local obj = M.training_state(ctx.train_network, ctx.optimizer)
  local saver = self.saver or function(o, p, so) return require("spore").save_checkpoint(o, p, so) end
  -- Save first: old files go only once the new one is complete (save_checkpoint writes
  -- path.tmp and renames it), so a failed or killed save never leaves no checkpoint.
  saver(obj, path, { append_dict = append })
  self._seq = self._seq + 1
  self._owned[path] = self._seq
  self.saved[#self.saved + 1] = path
  self.latest = path
  self._last_triggered = ctx.cur_step_num
  self:_prune(path)
end

-- Keep the newest keep_checkpoint_max files "<prefix>-*.ckpt" (newest included).
function ModelCheckpoint:_prune(newest)
  local keep = self.config.keep_checkpoint_max
  if not keep or keep <= 0 then return end
  local old = {}
  for _, f in ipairs(self:_files()) do if f.path ~= newest then old[#old + 1] = f.path end end
  for i = 1, #old - (keep - 1) do os.remove(old[i]) end
end

function ModelCheckpoint:on_train_step_end(ctx)
  local n = self.config.save_checkpoint_steps
  if n and n >= 1 and ctx.cur_step_num - self._last_triggered >= n then self:_save(ctx) end
end

function ModelCheckpoint:on_train_end(ctx)
  if ctx.cur_step_num ~= self._last_triggered then self:_save(ctx) end
end

M.LossMonitor_class, M.TimeMonitor_class, M.ModelCheckpoint_class = LossMonitor, TimeMonitor, ModelCheckpoint
return M
