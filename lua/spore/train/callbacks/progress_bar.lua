--- spore.train.ProgressBar([opts{out=file, width=16, interval=0.1}]): one live status line
-- for the whole run — progress over every step of the run, ETA, images/s and the last loss:
--   epoch 1/2 [=======         ] 812/3750  ETA 0:00:41  1987 img/s  loss 0.5312
-- It is redrawn in place (carriage return + erase line) and never torn by log lines: every
-- log line is printed through ProgressBar.log(line, out), which clears the status line,
-- prints the line, and draws the status line again below it. The status line is erased at the
-- end of training (and by ProgressBar.clear_status(), e.g. before an error message).
-- Model:train adds one by itself when stdout is a terminal (opts.progress=false turns that
-- off); the scripts draw theirs on stderr, only when stderr is a terminal and --quiet is off.
-- The callbacks' default print goes through ProgressBar.log, so LossMonitor lines never tear it.
local B = require("ffi.data")
local class = require("spore.class")

local ProgressBar = class("ProgressBar")

-- the aggregator requires this file: reach it at call time, not load time
local function cbs() return require("spore.train.callbacks") end

-- the one status line of the process: the stream it is on and its text (nil: none shown)
local status = { out = nil, text = nil }
ProgressBar.status = status

local function clear()
  if status.text then status.out:write("\r\27[K"); status.out:flush() end
end

--- Print a log line (to out, default stdout) above the status line: clear, print, redraw.
function ProgressBar.log(line, out)
  out = out or io.stdout
  clear()
  out:write(line, "\n")
  out:flush()
  if status.text then status.out:write(status.text); status.out:flush() end
end

--- Show text as the status line on out (replacing the previous one).
function ProgressBar.set_status(text, out)
  out = out or io.stdout
  if status.text and status.out ~= out then clear() end
  status.out, status.text = out, text
  out:write("\r\27[K", text)
  out:flush()
  cbs().bar_active = (out == io.stdout)
end

--- isatty(fd): is file descriptor fd (1 stdout, 2 stderr) a terminal?
ProgressBar.isatty = B.isatty

--- Erase the status line, if one is shown.
function ProgressBar.clear_status()
  clear()
  status.text = nil
  cbs().bar_active = false
end

-- the terminal's width (COLUMNS, else 80): the line must never wrap, or \r cannot redraw it
local function columns()
  local c = tonumber(os.getenv("COLUMNS") or "")
  return (c and c >= 20) and c or 80
end

local function hms(s)
  s = math.max(0, math.floor(s + 0.5))
  return string.format("%d:%02d:%02d", math.floor(s / 3600), math.floor(s / 60) % 60, s % 60)
end

function ProgressBar:__init(opts)
  opts = opts or {}
  self.out, self.width, self.interval = opts.out or io.stdout, opts.width or 16, opts.interval or 0.1
end

function ProgressBar:on_train_begin(ctx)
  self._t0, self._last, self._imgs, self._s0 = B.now(), -math.huge, 0, ctx.cur_step_num
  self._total = (ctx.epoch_num - (ctx.initial_epoch or 0)) * ctx.batch_num
end

function ProgressBar:text(ctx)
  local now = B.now()
  local done = ctx.cur_step_num - self._s0
  local total = math.max(self._total or 0, done)
  local el = now - self._t0
  local frac = total > 0 and math.min(1, done / total) or 1
  local fill = math.floor(frac * self.width + 0.5)
  local eta = done > 0 and el / done * (total - done) or 0
  local s = string.format("epoch %d/%d [%s%s] %d/%d  ETA %s  %.0f img/s  loss %s", ctx.cur_epoch_num,
    ctx.epoch_num, string.rep("=", fill), string.rep(" ", self.width - fill), done, total, hms(eta),
    el > 0 and self._imgs / el or 0, cbs().format_loss(ctx.net_outputs or 0))
  return s:sub(1, columns() - 1)
end

function ProgressBar:_draw(ctx, force)
  local now = B.now()
  if not force and now - self._last < self.interval then return end
  self._last = now
  ProgressBar.set_status(self:text(ctx), self.out)
end

function ProgressBar:on_train_step_end(ctx)
  if not self._t0 then self:on_train_begin(ctx) end
  self._imgs = self._imgs + (ctx.batch_size or 0)
  self:_draw(ctx, false)
end
function ProgressBar:on_train_epoch_end(ctx) if self._t0 then self:_draw(ctx, true) end end
function ProgressBar:on_train_end() ProgressBar.clear_status() end

return ProgressBar
