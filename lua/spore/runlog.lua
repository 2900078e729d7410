--- spore.runlog — the record of a training run: DIR/metrics.jsonl and, at the end, a PNG plot
-- of the loss and accuracy curves drawn by gnuplot (Debian `gnuplot-nox`).
--
--   local runlog = require("spore.runlog")
--   local rl = runlog.RunLog(dir, { every = 20, eval = function(ctx) return model:eval(test) end,
--                                   print = print, meta = { script = "mine" } })
--   model:train(epochs, ds, { callbacks = { rl } })
--   rl.path, rl.plot_path, rl.epochs                 -- metrics.jsonl, metrics.png, epoch records
--
-- RunLog(dir, opts) is a Model:train callback. opts (all optional):
--   every (20): a step record every N steps (and at each epoch's last step);
--   eval (function(ctx) → {accuracy=, loss=, ...}): called after each epoch, its metrics go
--     into the epoch record (Model:eval's table fits);
--   plot (true): draw DIR/metrics.png at the end (runlog.plot); false: no plot;
--   print (function(line)): a line per epoch ("epoch 1/2: train loss ..."); nil: none;
--   warn (function(line)): warnings (no plot: gnuplot missing...); default: one line on
--     stderr, above the status line (ProgressBar.log);
--   meta (table): merged into the first record (the script, its options...);
--   gnuplot (string): the gnuplot command (default $SPORE_GNUPLOT, else gnuplot);
--   file ("metrics.jsonl"): the record's file name in dir.
-- metrics.jsonl holds one JSON object per line (spore.json; NaN/Inf are null), each flushed
-- as soon as it is written, with a "kind":
--   {"kind":"run","started":"2026-01-01T00:00:00Z","epochs":2,"steps_per_epoch":1875,...meta}
--   {"kind":"step","epoch":1,"step":20,"loss":0.52,"loss_mean":0.61,"lr":0.01,"img_per_s":2100.3,"time":0.31}
--     step: global step (1-based); loss: that step's loss; loss_mean: mean over the steps
--     since the previous step record; img_per_s: images per second over those steps; time:
--     seconds since training began
--   {"kind":"epoch","epoch":1,"step":1875,"train_loss":0.61,"eval":{"accuracy":0.82,"loss":0.5,...},"time":31.2}
--   {"kind":"end","steps":3750,"seconds":62.5,"plot":"DIR/metrics.png"|null}
-- runlog.read(path) → the records; runlog.plot(jsonl, png) draws any metrics.jsonl.
local json = require("spore.json")
local now = require("ffi.data").now
local class = require("spore.class")
local opts_lib = require("spore.opts")

local M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh_ok(cmd) local r = os.execute(cmd) return r == 0 or r == true end

-- warnings: one line on stderr, above a status line if one is shown
local function default_warn(msg) require("spore.train.callbacks.progress_bar").log(msg, io.stderr) end

--- Records of a metrics.jsonl file (a list of tables). Errors name the file and line.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then error("runlog.read: " .. tostring(err), 2) end
  local out, n = {}, 0
  for line in f:lines() do
    n = n + 1
    if line ~= "" then
      local ok, r = pcall(json.decode, line)
      if not ok then f:close(); error(path .. ":" .. n .. ": " .. tostring(r), 2) end
      out[#out + 1] = r
    end
  end
  f:close()
  return out
end

local function num(v) return type(v) == "number" and v == v and v > -math.huge and v < math.huge end

--- The gnuplot program (with the data inline) that plots records into png; nil when no
-- record holds a finite loss.
function M.gnuplot_script(records, png, title)
  local steps, evals = {}, {}
  local x0, x1 = math.huge, -math.huge
  for _, r in ipairs(records) do
    if (r.kind == "step" or r.kind == "epoch") and num(r.step) then x0, x1 = math.min(x0, r.step), math.max(x1, r.step) end
    if r.kind == "step" and num(r.step) then
      local l = num(r.loss_mean) and r.loss_mean or r.loss
      if num(l) then steps[#steps + 1] = string.format("%d %.9g", r.step, l) end
    elseif r.kind == "epoch" and num(r.step) and type(r.eval) == "table" then
      local acc = num(r.eval.accuracy) and string.format("%.9g", r.eval.accuracy) or "NaN"
      local el = num(r.eval.loss) and string.format("%.9g", r.eval.loss) or "NaN"
      evals[#evals + 1] = string.format("%d %s %s", r.step, acc, el)
    end
  end
  local has_acc, has_eloss = false, false
  for _, e in ipairs(evals) do
    local _, a, l = e:match("^(%S+) (%S+) (%S+)$")
    if a ~= "NaN" then has_acc = true end
    if l ~= "NaN" then has_eloss = true end
  end
  if #steps == 0 and not has_eloss and not has_acc then return nil end
  local L = {
    "# spore run plot: gnuplot metrics.gp writes the PNG again",
    "$steps << EOD", table.concat(steps, "\n"), "EOD",
    "$evals << EOD", table.concat(evals, "\n"), "EOD",
    "set terminal png size 900," .. (has_acc and 900 or 480),
    "set output " .. q(png),
    "set grid", "set key top right", "set xlabel 'step'",
    -- both panels on the same steps
    string.format("set xrange [%d:%d]", x0 > 0 and x0 - 1 or 0, x1 > x0 and x1 or x0 + 1),
  }
  if has_acc then L[#L + 1] = "set multiplot layout 2,1 title " .. q(title or "") .. " noenhanced"
  else L[#L + 1] = "set title " .. q(title or "") .. " noenhanced" end
  L[#L + 1] = "set ylabel 'loss'"
  local series = {}
  if #steps > 0 then series[#series + 1] = "$steps using 1:2 with lines lw 1 title 'train loss'" end
  if has_eloss then series[#series + 1] = "$evals using 1:3 with linespoints pt 7 lw 2 title 'eval loss'" end
  L[#L + 1] = "plot " .. table.concat(series, ", ")
  if has_acc then
    L[#L + 1] = "set title ''"
    L[#L + 1] = "set ylabel 'accuracy'"
    L[#L + 1] = "set key bottom right"
    L[#L + 1] = "plot $evals using 1:2 with linespoints pt 7 lw 2 title 'eval accuracy'"
    L[#L + 1] = "unset multiplot"
  end
  return table.concat(L, "\n") .. "\n"
end

-- the gnuplot to run: the caller's, else $SPORE_GNUPLOT, else gnuplot on PATH
local function gnuplot_cmd(cmd) return cmd or os.getenv("SPORE_GNUPLOT") or "gnuplot" end

--- Plot a metrics.jsonl into png (default: next to it, metrics.png), with gnuplot (the
-- command gnuplot, else $SPORE_GNUPLOT, else `gnuplot`). Writes DIR/metrics.gp (the program,
-- data inline) too. Returns png, or nil and why (gnuplot missing or failing: never an
-- error). The PNG appears whole or not at all.
function M.plot(jsonl, png, title, gnuplot)
  png = png or jsonl:gsub("[^/]*$", "") .. "metrics.png"
  local gp = png:gsub("%.png$", "") .. ".gp"
  if gp == png then gp = png .. ".gp" end
  local cmd = gnuplot_cmd(gnuplot)
  if not sh_ok("command -v " .. q(cmd) .. " >/dev/null 2>&1") then
    return nil, cmd .. " not found (Debian: apt-get install gnuplot-nox)"
  end
  local ok, records = pcall(M.read, jsonl)
  if not ok then return nil, tostring(records) end
  local tmp = png .. ".tmp"
  local script = M.gnuplot_script(records, tmp, title or jsonl)
  if not script then return nil, "no finite loss in " .. jsonl end
  local f = io.open(gp, "wb")
  if not f then return nil, "cannot write " .. gp end
  -- the kept program writes the final name; the run writes a temporary one, then renames
  f:write((script:gsub("set output [^\n]*", "set output " .. q(png), 1)))
  f:close()
  local errf = os.tmpname()
  local p = io.popen(q(cmd) .. " 2>" .. q(errf), "w")
  p:write(script)
  local closed = p:close()
  local ef = io.open(errf, "rb")
  local err = ef and ef:read("*a") or ""
  if ef then ef:close() end
  os.remove(errf)
  local sz = io.open(tmp, "rb")
  local size = sz and sz:seek("end") or 0
  if sz then sz:close() end
  if not closed or size == 0 then
    os.remove(tmp)
    return nil, "gnuplot failed: " .. (err:match("[^\n]*%S[^\n]*") or "no output")
  end
  local rok, rerr = os.rename(tmp, png)
  if not rok then os.remove(tmp); return nil, tostring(rerr) end
  return png
end

---------------------------------------------------------------- the callback
local RunLog = class("RunLog")
M.RunLog = RunLog

local KNOWN = { "every", "eval", "plot", "print", "warn", "meta", "file", "gnuplot" }

function RunLog:__init(dir, opts)
  if type(dir) ~= "string" or dir == "" then error("RunLog: dir must be a directory name, got " .. type(dir), 3) end
  opts = opts_lib.check("RunLog", opts or {}, KNOWN, nil,
    { every = "number", eval = "function", plot = "boolean", print = "function", warn = "function", meta = "table",
      file = "string", gnuplot = "string" })
  local every = opts.every or 20
  if every < 1 or every ~= math.floor(every) then error("RunLog: every must be a positive integer, got " .. every, 3) end
  self.dir, self.every, self.eval_fn, self.print = dir, every, opts.eval, opts.print
  self.warn = opts.warn or default_warn
  self.gnuplot = opts.gnuplot
  self.want_plot = opts.plot ~= false
  self.meta = opts.meta or {}
  self.path = dir .. "/" .. (opts.file or "metrics.jsonl")
  self.epochs = {}
end

function RunLog:_write(rec)
  self.f:write(json.encode(rec), "\n")
  self.f:flush()
end

function RunLog:on_train_begin(ctx)
  os.execute("mkdir -p " .. q(self.dir))
  local f, err = io.open(self.path, "wb")
  if not f then error("RunLog: cannot write " .. self.path .. ": " .. tostring(err), 0) end
  self.f = f
  self._t0 = now()
  self._wt, self._wimgs, self._wsum, self._wn = self._t0, 0, 0, 0
  self._esum, self._en = 0, 0
  local keys = { "kind", "started", "epochs", "initial_epoch", "steps_per_epoch" }
  local rec = { kind = "run", started = os.date("!%Y-%m-%dT%H:%M:%SZ"), epochs = ctx.epoch_num,
    initial_epoch = ctx.initial_epoch or 0, steps_per_epoch = ctx.batch_num }
  local extra = {}
  for k in pairs(self.meta) do extra[#extra + 1] = k end
  table.sort(extra)
  for _, k in ipairs(extra) do keys[#keys + 1] = k; rec[k] = self.meta[k] end
  self:_write(json.ordered(rec, keys))
end

local function lr_of(opt)
  if not opt or not opt.get_lr then return nil end
  local ok, v = pcall(opt.get_lr, opt)
  if not ok then return nil end
  if type(v) == "table" then v = v[1] end
  v = tonumber(v)
  -- the optimizer keeps it as float32: write the shortest decimal of that float32 (0.01)
  if v then v = tonumber(require("spore.train.callbacks").format_loss(v)) or v end
  return v
end

function RunLog:_step_record(ctx)
  local t = now()
  local dt = t - self._wt
  local rec = json.ordered({ kind = "step", epoch = ctx.cur_epoch_num, step = ctx.cur_step_num, loss = ctx.net_outputs,
    loss_mean = self._wn > 0 and self._wsum / self._wn or nil, lr = lr_of(ctx.optimizer),
    img_per_s = dt > 0 and self._wimgs / dt or nil, time = t - self._t0 },
    { "kind", "epoch", "step", "loss", "loss_mean", "lr", "img_per_s", "time" })
  self:_write(rec)
  self._wt, self._wimgs, self._wsum, self._wn = t, 0, 0, 0
  self._last_step = ctx.cur_step_num
end

function RunLog:on_train_step_end(ctx)
  if not self.f then self:on_train_begin(ctx) end
  local l = ctx.net_outputs
  self._wimgs = self._wimgs + (ctx.batch_size or 0)
  self._wsum, self._wn = self._wsum + l, self._wn + 1
  self._esum, self._en = self._esum + l, self._en + 1
  if ctx.cur_step_num % self.every == 0 then self:_step_record(ctx) end
end

function RunLog:on_train_epoch_end(ctx)
  if not self.f then return end
  if self._last_step ~= ctx.cur_step_num and self._wn > 0 then self:_step_record(ctx) end
  local m
  if self.eval_fn then m = self.eval_fn(ctx) end
  local rec = json.ordered({ kind = "epoch", epoch = ctx.cur_epoch_num, step = ctx.cur_step_num,
    train_loss = self._en > 0 and self._esum / self._en or nil, eval = m, time = now() - self._t0 },
    { "kind", "epoch", "step", "train_loss", "eval", "time" })
  self:_write(rec)
  self.epochs[#self.epochs + 1] = rec
  self.last_eval = m
  if self.print then
    local s = string.format("epoch %d/%d: train loss %.4f", ctx.cur_epoch_num, ctx.epoch_num, rec.train_loss or 0 / 0)
    if m and m.accuracy then s = s .. string.format(", eval accuracy %.4f", m.accuracy) end
    if m and m.loss then s = s .. string.format(", eval loss %.4f", m.loss) end
    self.print(s .. string.format(" (%.1f s)", rec.time))
  end
  self._esum, self._en = 0, 0
end

function RunLog:on_train_end(ctx)
  if not self.f then return end
  local png, why
  if self.want_plot then
    -- the end record names the plot: draw it first (from the records written so far)
    png, why = M.plot(self.path, self.dir .. "/metrics.png", self.meta.title or self.dir, self.gnuplot)
    if not png then self.warn("runlog: warning: no plot (" .. why .. "); the metrics are in " .. self.path) end
  end
  self.plot_path = png
  self:_write(json.ordered({ kind = "end", steps = ctx.cur_step_num, seconds = now() - self._t0,
    plot = png or json.null }, { "kind", "steps", "seconds", "plot" }))
  self.f:close()
  self.f = nil
end

return M
