dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
-- convert.lua IN OUT [--rename RULES.lua|NAME] — .ckpt / .safetensors / PyTorch .pth -> .ckpt or .safetensors.
local USAGE = [[
usage: luajit scripts/convert.lua IN OUT [--rename RULES.lua] [--crc] [--dec-key KEY] [--dec-mode MODE]
                                  [--enc-key KEY] [--enc-mode MODE]
  IN              a MindSpore .ckpt, a .safetensors or a PyTorch .pth file (format detected from content)
  OUT             ends in .ckpt or .safetensors: the output format
  --rename FILE   a Lua file returning rules {{"^backbone%.", ""}, function(name, dict) ... end, ...},
                  applied in order; a function returning nil drops the tensor; or a built-in rule set:
                  torch_to_mindspore (BatchNorm weight/bias/running_* -> gamma/beta/moving_*, drops
                  num_batches_tracked) | mindspore_to_torch
  --crc           write a CRC (crc_num); --dec-key/--dec-mode read, --enc-key/--enc-mode write encrypted .ckpt
  -h, --help      this text
str entries (append_dict strings) cannot be stored in safetensors, nor non-numeric .pth values
(strings, None, lists) anywhere: they are skipped with a warning. Writing .pth is not supported.]]

local function usage_error(msg)
  io.stderr:write("convert: " .. msg .. "\n" .. USAGE .. "\n")
  os.exit(2)
end
local args, opts = {}, {}
local VAL = { ["--rename"] = "rename", ["--dec-key"] = "dec_key", ["--dec-mode"] = "dec_mode", ["--enc-key"] = "enc_key",
  ["--enc-mode"] = "enc_mode" }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "-h" or a == "--help" then print(USAGE) os.exit(0)
  elseif a == "--crc" then opts.crc = true
  elseif VAL[a] then
    if not arg[i + 1] then usage_error(a .. " needs a value") end
    opts[VAL[a]] = arg[i + 1]; i = i + 1
  elseif a:sub(1, 1) == "-" then usage_error("unknown option " .. a)
  else args[#args + 1] = a end
  i = i + 1
end
if #args ~= 2 then usage_error("expected IN and OUT") end
local out_fmt = args[2]:match("%.safetensors$") and "safetensors" or args[2]:match("%.ckpt$") and "ckpt"
if not out_fmt then usage_error("OUT must end in .ckpt or .safetensors: " .. args[2]) end

local ok, err = pcall(function()
  local ckpt = require("spore.ckpt")
  local P = require("spore.ckpt.policy")
  local rules
  local builtin = opts.rename and ckpt.rules[opts.rename]
  if builtin and opts.rename:match("_to_") then
    rules = builtin
  elseif opts.rename then
    local chunk, lerr = loadfile(opts.rename)
    if not chunk then error("cannot load rename rules: " .. lerr, 0) end
    rules = chunk()
    if type(rules) ~= "table" then error("rename rules file '" .. opts.rename .. "' must return a table", 0) end
  end
  local res = ckpt.read_raw(args[1], { dec_key = opts.dec_key, dec_mode = opts.dec_mode })
  local items, seen, skipped, names = {}, {}, 0, {}
  for _, e in ipairs(res.entries) do names[e.name] = true end
  for _, e in ipairs(res.entries) do
    local name = P.rename(e.name, rules, names)
    if name then
      if seen[name] then error("rename rules map two tensors to '" .. name .. "'", 0) end
      seen[name] = true
      if e.tensor then
        items[#items + 1] = { name = name, tensor = e.tensor }
      elseif out_fmt == "safetensors" or e.type ~= "str" then
        io.stderr:write(string.format("convert: warning: skipping '%s' (type %s cannot be stored in %s)\n", e.name, e.type, out_fmt))
        skipped = skipped + 1
      else
        items[#items + 1] = { name = name, type = e.type, shape = e.shape, bytes = e.bytes }
      end
    end
  end
  if #items == 0 then -- never write a checkpoint spore (or MindSpore) cannot load
    error(string.format("nothing to write: no tensors left from '%s'%s; %s not written", args[1],
      #res.entries == 0 and " (it has no entries)" or " after renaming and skipping", args[2]), 0)
  end
  ckpt.write_raw(args[2], items, { format = out_fmt, crc_check = opts.crc, enc_key = opts.enc_key, enc_mode = opts.enc_mode })
  print(string.format("%s -> %s: %d tensors (%s)%s", args[1], args[2], #items, out_fmt,
    skipped > 0 and (", " .. skipped .. " skipped") or ""))
end)
if not ok then
  io.stderr:write("convert: " .. (tostring(err):match("^[^\n]*"):gsub("^[^:]*%.lua:%d+: ", "")) .. "\n")
  os.exit(1)
end
