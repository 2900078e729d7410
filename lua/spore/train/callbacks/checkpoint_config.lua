--- spore.train.CheckpointConfig{...} — MindSpore 2.10's CheckpointConfig (train/callback/_checkpoint.py).
-- Keys (MindSpore's names and defaults): save_checkpoint_steps=1, save_checkpoint_seconds=0,
-- keep_checkpoint_max=5, keep_checkpoint_per_n_minutes=0, integrated_save=true (single
-- device: nothing to merge), async_save=false (only false), saved_network=nil (a net saved
-- instead of the training network), append_info=nil, enc_key=nil (a string of 16/24/32 bytes),
-- enc_mode="AES-GCM" ("AES-CBC", "SM4-CBC"), exception_save=false, crc_check=false,
-- remove_redundancy=false (only false: a parallel feature), format="ckpt" ("safetensors");
-- spore's own: saver (function(obj, path, opts) replacing spore.save_checkpoint).
-- As MindSpore: save_checkpoint_steps > 0 turns save_checkpoint_seconds off; keep_checkpoint_max
-- > 0 turns keep_checkpoint_per_n_minutes off, and with neither keep_checkpoint_max becomes 1; all
-- four 0 is an error; format "safetensors" with enc_key, a non-default enc_mode, crc_check or
-- exception_save is an error.
-- append_info: a list of "epoch_num" / "step_num" and at most one dict {name = number|string|
-- boolean|Tensor}. config.append_dict is MindSpore's dict of it (epoch_num and step_num first,
-- then the dict's other keys, sorted: a Lua table has no insertion order): an initial
-- {epoch_num = E, step_num = S} (the zoo's resume form) is where ModelCheckpoint counts from;
-- ModelCheckpoint updates this very table before each save, as MindSpore's.
-- Fields are plain (config.save_checkpoint_steps, ...); __config = true marks one.
local class = require("spore.class")
local optcheck = require("spore.opts")
local T = require("spore.tensor")

local CheckpointConfig = class("CheckpointConfig")

local KEYS = { "save_checkpoint_steps", "save_checkpoint_seconds", "keep_checkpoint_max",
  "keep_checkpoint_per_n_minutes", "integrated_save", "async_save", "saved_network", "append_info", "enc_key",
  "enc_mode", "exception_save", "crc_check", "remove_redundancy", "format", "saver" }
local REFUSED = {
  incremental = "MapParameter incremental saving is not implemented",
  enable_redundance = "a parallel (AITURBO) feature spore does not have",
}
local TYPES = { save_checkpoint_steps = "integer", save_checkpoint_seconds = "integer", keep_checkpoint_max = "integer",
  keep_checkpoint_per_n_minutes = "integer", integrated_save = "boolean", async_save = { "boolean", "string" },
  saved_network = "table", append_info = "table", enc_key = "string", enc_mode = "string", exception_save = "boolean",
  crc_check = "boolean", remove_redundancy = "boolean", format = "string", saver = "function" }
CheckpointConfig.OPTIONS, CheckpointConfig.REFUSED = KEYS, REFUSED

local function nonneg(k, v)
  if v ~= nil and v < 0 then error(("CheckpointConfig: '%s' must be a non-negative integer, got %d"):format(k, v), 4) end
  return v
end

--- MindSpore's _handle_append_info: nil for nil / {}; else {order = names, values = name → value}
local function handle_append_info(ai)
  if ai == nil or next(ai) == nil then return nil end
  if ai[1] == nil then
    error("CheckpointConfig: append_info must be a list (of \"epoch_num\", \"step_num\" and one dict), got a dict; "
      .. "write {{epoch_num = 0, step_num = 0}}", 4)
  end
  local values, order, has = {}, {}, {}
  for _, e in ipairs(ai) do if e == "epoch_num" or e == "step_num" then has[e] = true end end
  for _, k in ipairs({ "epoch_num", "step_num" }) do
    if has[k] then values[k] = 0; order[#order + 1] = k end
  end
  local ndict = 0
  for i, e in ipairs(ai) do
    if type(e) == "string" then
      if e ~= "epoch_num" and e ~= "step_num" then
        error(("CheckpointConfig: append_info[%d] must be \"epoch_num\" or \"step_num\", got \"%s\""):format(i, e), 4)
      end
    elseif type(e) == "table" and not T.is_tensor(e) then
      ndict = ndict + 1
      if ndict > 1 then error("CheckpointConfig: append_info may hold only one dict, got " .. ndict, 4) end
      local ks = {}
      for k, v in pairs(e) do
        if type(k) ~= "string" then error("CheckpointConfig: append_info dict keys must be strings, got " .. type(k), 4) end
        local tv = type(v)
        if tv ~= "number" and tv ~= "string" and tv ~= "boolean" and not T.is_tensor(v) then
          error(("CheckpointConfig: append_info['%s'] must be a number, a string, a boolean or a Tensor, got %s")
            :format(k, tv), 4)
        end
        ks[#ks + 1] = k
      end
      table.sort(ks, function(a, b)
        local ra = a == "epoch_num" and 1 or a == "step_num" and 2 or 3
        local rb = b == "epoch_num" and 1 or b == "step_num" and 2 or 3
        if ra ~= rb then return ra < rb end
        return a < b
      end)
      for _, k in ipairs(ks) do
        if values[k] == nil then order[#order + 1] = k end
        values[k] = e[k]
      end
    else
      error(("CheckpointConfig: append_info[%d] must be a name or a dict, got %s"):format(i, type(e)), 4)
    end
  end
  -- keep epoch_num, step_num first whichever form gave them
  local sorted = {}
  for _, k in ipairs({ "epoch_num", "step_num" }) do if values[k] ~= nil then sorted[#sorted + 1] = k end end
  for _, k in ipairs(order) do if k ~= "epoch_num" and k ~= "step_num" then sorted[#sorted + 1] = k end end
  return { order = sorted, values = values }
end
CheckpointConfig.handle_append_info = handle_append_info

function CheckpointConfig:__init(o)
  o = optcheck.check("CheckpointConfig", o, KEYS, REFUSED, TYPES, 4)
  local steps = o.save_checkpoint_steps == nil and 1 or nonneg("save_checkpoint_steps", o.save_checkpoint_steps)
  local secs = nonneg("save_checkpoint_seconds", o.save_checkpoint_seconds or 0)
  local keep = o.keep_checkpoint_max == nil and 5 or nonneg("keep_checkpoint_max", o.keep_checkpoint_max)
  local per_min = nonneg("keep_checkpoint_per_n_minutes", o.keep_checkpoint_per_n_minutes or 0)
  if steps == 0 and secs == 0 and keep == 0 and per_min == 0 then
    error("CheckpointConfig: the input arguments 'save_checkpoint_steps', 'save_checkpoint_seconds', "
      .. "'keep_checkpoint_max' and 'keep_checkpoint_per_n_minutes' can't be all None or 0.", 3)
  end
  if steps > 0 then secs = nil end
  if keep > 0 then per_min = nil
  elseif per_min == 0 then keep = 1 end
  if o.async_save ~= nil and o.async_save ~= false then
    error("CheckpointConfig: option 'async_save' is MindSpore's, but spore does not implement it (saves are synchronous)", 3)
  end
  if o.integrated_save == false then
    error("CheckpointConfig: option 'integrated_save' = false is MindSpore's, but spore does not implement it "
      .. "(no model parallelism: every tensor is whole)", 3)
  end
  if o.remove_redundancy == true then
    error("CheckpointConfig: option 'remove_redundancy' is MindSpore's, but spore does not implement it "
      .. "(a parallel feature; MindSpore refuses it in stand-alone too)", 3)
  end
  if o.saved_network ~= nil and type(o.saved_network.parameters_and_names) ~= "function" then
    error("CheckpointConfig: saved_network must be a network (with parameters_and_names)", 3)
  end
  local fmt = o.format or "ckpt"
  if fmt ~= "ckpt" and fmt ~= "safetensors" then
    error("CheckpointConfig: format must be 'ckpt' or 'safetensors', got '" .. fmt .. "'", 3)
  end
  local mode = o.enc_mode or "AES-GCM"
  if mode ~= "AES-GCM" and mode ~= "AES-CBC" and mode ~= "SM4-CBC" then
    error("CheckpointConfig: enc_mode must be 'AES-GCM', 'AES-CBC' or 'SM4-CBC', got '" .. mode .. "'", 3)
  end
  if o.enc_key ~= nil then
    local n = #o.enc_key
    if (mode == "SM4-CBC" and n ~= 16) or (mode ~= "SM4-CBC" and n ~= 16 and n ~= 24 and n ~= 32) then
      error(("CheckpointConfig: a %s enc_key must be %s bytes, got %d"):format(mode,
        mode == "SM4-CBC" and "16" or "16, 24 or 32", n), 3)
    end
  end
  if fmt == "safetensors" and (o.enc_key ~= nil or mode ~= "AES-GCM" or o.crc_check or o.exception_save) then
    error("CheckpointConfig: when format is 'safetensors', enc_key, enc_mode, crc_check and exception_save must be "
      .. "default (as MindSpore)", 3)
  end
  self.save_checkpoint_steps, self.save_checkpoint_seconds = steps, secs
  self.keep_checkpoint_max, self.keep_checkpoint_per_n_minutes = keep, per_min
  self.integrated_save, self.async_save, self.saved_network = true, false, o.saved_network
  self.append_info = o.append_info
  self._append = handle_append_info(o.append_info)
  self.append_dict = self._append and self._append.values or nil
  self.enc_key, self.enc_mode, self.crc_check, self.format = o.enc_key, mode, o.crc_check == true, fmt
  self.exception_save, self.remove_redundancy = o.exception_save == true, false
  self.saver, self.__config = o.saver, true
end

--- MindSpore's get_checkpoint_policy()
function CheckpointConfig:get_checkpoint_policy()
  return { save_checkpoint_steps = self.save_checkpoint_steps, save_checkpoint_seconds = self.save_checkpoint_seconds,
    keep_checkpoint_max = self.keep_checkpoint_max, keep_checkpoint_per_n_minutes = self.keep_checkpoint_per_n_minutes,
    saved_network = self.saved_network }
end

return CheckpointConfig
