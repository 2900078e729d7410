--- spore.train.ProgressBar([opts{out=file, width=30, interval=0.1}]): one redrawn line per
-- epoch with step, images/s, ETA and the last loss. Model:train adds one by
-- itself when stdout is a terminal (opts.progress=false turns that off). While its line is on
-- stdout, spore.train.callbacks.bar_active is true (the default print clears the line first).
local B = require("ffi.data")
local class = require("spore.class")

local ProgressBar = class("ProgressBar")

-- the aggregator requires this file: reach it at call time, not load time
local function cbs() return require("spore.train.callbacks") end

function ProgressBar:__init(opts)
  opts = opts or {}
  self.out, self.width, self.interval = opts.out or io.stdout, opts.width or 30, opts.interval or 0.1
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
    el > 0 and self._imgs / el or 0, hms(eta), cbs().format_loss(ctx.net_outputs or 0)))
  if final then self.out:write("\n") end
  cbs().bar_active = (self.out == io.stdout) and not final
  self.out:flush()
end
function ProgressBar:on_train_step_end(ctx)
  self._imgs = self._imgs + (ctx.batch_size or 0)
  self:_draw(ctx, false)
end
function ProgressBar:on_train_epoch_end(ctx) self:_draw(ctx, true) end
function ProgressBar:on_train_end() cbs().bar_active = false end

return ProgressBar
