-- convert.lua IN OUT [--rename RULES.lua|NAME] — .ckpt / .safetensors / PyTorch .pth -> .ckpt or .safetensors.
-- convert.lua --merge DIR.shards/index.json OUT.ckpt — one ordinary checkpoint from a sharded one
-- (spore.dist's shard_optimizer; spore.ckpt.merge).
-- Ends with one JSON line: {"input","output","format","tensors","skipped"}.
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "convert.lua",
  summary = "Convert a MindSpore .ckpt, a .safetensors or a PyTorch .pth file (format detected from content) to"
    .. " .ckpt or .safetensors (chosen by OUT's extension), optionally renaming tensors.",
  epilog = "str entries (append_dict strings) cannot be stored in safetensors, nor non-numeric .pth values (strings,"
    .. " None, lists) anywhere: they are skipped with a warning. Writing .pth is not supported. Rename rules apply in"
    .. " order; a function returning nil drops the tensor. torch_to_mindspore maps BatchNorm weight/bias/running_* to"
    .. " gamma/beta/moving_* and drops num_batches_tracked.",
  args = { { "input", "a .ckpt, .safetensors or .pth file" }, { "output", "ends in .ckpt or .safetensors: the output format" } },
  options = {
    "rename", { "crc", help = "write a CRC (crc_num) into the output" }, "dec_key", "dec_mode",
    { "--enc-key", "string", nil, "key to encrypt the output .ckpt", arg = "KEY" },
    { "--enc-mode", "string", nil, "encryption mode: AES-GCM (default) | AES-CBC | SM4-CBC", arg = "MODE" },
    { "quiet", help = "no summary line on stderr: only warnings and the final JSON line" },
    { "--merge", "flag", false, "IN is a sharded checkpoint (<stem>.shards/index.json or the directory, written "
      .. "by spore.dist with shard_optimizer): merge its shards into one checkpoint" },
  },
}

cli.main(spec, function(opts)
  local args = { opts.input, opts.output }
  local out_fmt = args[2]:match("%.safetensors$") and "safetensors" or args[2]:match("%.ckpt$") and "ckpt"
  if not out_fmt then cli.usage_error("OUT must end in .ckpt or .safetensors: " .. args[2]) end
  local ckpt = require("spore.ckpt")
  local P = require("spore.ckpt.policy")
  local rules = opts.rename and require("spore.workflow").load_rules(opts.rename) or nil
  local res
  if opts.merge then
    if opts.dec_key then cli.usage_error("--merge reads unencrypted shards: --dec-key does not apply") end
    local d = require("spore.ckpt.merge").load(args[1])
    res = { entries = {} }
    for _, k in ipairs(ckpt.keys(d)) do
      local v = d[k]
      if type(v) == "string" then
        res.entries[#res.entries + 1] = { name = k, type = "str", shape = { 0 }, bytes = ckpt.utf32_encode(v) }
      else
        res.entries[#res.entries + 1] = { name = k, tensor = v, type = "tensor" }
      end
    end
  else
    res = ckpt.read_raw(args[1], { dec_key = opts.dec_key, dec_mode = opts.dec_mode })
  end
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
        io.stderr:write(string.format("convert.lua: warning: skipping '%s' (type %s cannot be stored in %s)\n", e.name, e.type, out_fmt))
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
  if not opts.quiet then
    io.stderr:write(string.format("convert.lua: %s -> %s: %d tensors (%s)%s\n", args[1], args[2], #items, out_fmt,
      skipped > 0 and (", " .. skipped .. " skipped") or ""))
  end
  return require("spore.json").ordered({ input = args[1], output = args[2], format = out_fmt, tensors = #items,
    skipped = skipped }, { "input", "output", "format", "tensors", "skipped" })
end)
