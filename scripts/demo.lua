-- demo.lua — `make demo`: the mission's workflow on Fashion-MNIST (Debian's
-- dataset-fashion-mnist), each step in a fresh process as a user would run it:
--   1. train LeNet5 for one epoch and save a MindSpore checkpoint (net + optimizer)
--   2. load that checkpoint for inference and evaluate it
--   3. resume training from it with the optimizer state
--   4. fine-tune a new classifier head with the feature layers frozen
--   5. the ResNet path on an image folder: ResNet18 fine-tuned with a new head read from a
--      folder of JPEGs (Debian's Fashion-MNIST written out at set-up time by `make demo-data`),
--      evaluated in a fresh process, then predict.lua on one image
-- Ends by listing each run's metrics.jsonl and plot, then one JSON line:
-- {"out","plots","train","eval","resume","newhead","resnet","resnet_eval","predict"} (each step's own JSON line).
local ROOT = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "demo.lua",
  summary = "Train LeNet5 on Fashion-MNIST, evaluate the checkpoint in a fresh process, resume training from it"
    .. " with the optimizer state, then fine-tune a new head with the feature layers frozen.",
  epilog = "The run directory is emptied first. Each step is a separate script run; their JSON lines are collected"
    .. " into the final one.",
  options = {
    { "out", default = os.getenv("SPORE_DEMO_OUT") or ((ROOT:gsub("/?scripts/%.%.$", "")):gsub("^$", ".") .. "/out/demo"),
      help = "demo directory, emptied first, for the train/, resume/, newhead/ runs; $SPORE_DEMO_OUT sets the default" },
    { "steps", help = "stop each training after N steps (a quick look; default: one full epoch each)" },
    "no_plot", { "quiet", help = "no narration: only the final JSON line" },
  },
}

cli.main(spec, function(o)
local spore = require("spore")
local json = require("spore.json")
local root = spore._root
local out = o.out
if not out:match("^/") then out = (os.getenv("PWD") or ".") .. "/" .. out end

local function say(s) if not o.quiet then io.write(s, "\n"); io.flush() end end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Run a script, stream its stderr, return its last stdout line decoded.
local function run(script, args, no_plots)
  local cmd = ("luajit %s/scripts/%s %s --quiet%s"):format(root, script, args,
    (o.no_plot and not no_plots) and " --no-plot" or "")
  local shown = cmd
  local i, j = shown:find(root .. "/", 1, true)
  while i do shown = shown:sub(1, i - 1) .. shown:sub(j + 1); i, j = shown:find(root .. "/", 1, true) end
  say("  $ " .. shown)
  local p = io.popen(cmd, "r")
  local all = p:read("*a")
  local ok = p:close()
  local last = all:match("([^\n]+)\n?$")
  if not ok or not last then error(script .. " failed", 0) end
  local r = json.decode(last)
  r._json = last
  return r
end
say("spore demo: LeNet5 on Fashion-MNIST (/usr/share/datasets/fashion-mnist), 2 CPU cores\n")
os.execute("rm -rf " .. q(out) .. " && mkdir -p " .. q(out))

say("1. Train LeNet5 from scratch for " .. (o.steps and (o.steps .. " steps") or "one epoch (60,000 images)")
  .. ", saving a checkpoint with the optimizer state.")
local cap = o.steps and (" --steps " .. o.steps) or ""
local t = run("train.lua", ("--net lenet5 --dataset fashion-mnist --epochs 1 --out %s%s"):format(q(out .. "/train"), cap))
say(("   -> test accuracy %.4f after %d steps in %.0f s; saved %s\n"):format(t.accuracy, t.steps, t.seconds, t.checkpoint))

say("2. In a fresh process, load that checkpoint for inference and evaluate on the 10,000 test images.")
local e = run("eval.lua", ("--net lenet5 --ckpt %s --dataset fashion-mnist"):format(t.checkpoint))
say(("   -> accuracy %.4f, loss %.4f on %d images (same as at the end of training: %s)\n"):format(
  e.accuracy, e.loss, e.samples, math.abs(e.accuracy - t.accuracy) < 1e-9 and "yes" or "NO"))

say("3. Resume training from the checkpoint: weights, momentum buffers (moments.*), learning rate and global step.")
local r = run("finetune.lua", ("--net lenet5 --ckpt %s --dataset fashion-mnist --load-optimizer --epochs 1 --out %s%s")
  :format(t.checkpoint, q(out .. "/resume"), cap))
say(("   -> resumed at the checkpoint's loss level (first 100 steps: %.3f); after a second epoch test accuracy %.4f;"
  .. " global step %d; saved %s\n"):format(r.first_100_steps_loss, r.accuracy, r.global_step, r.checkpoint))

say(("4. Transfer: a new 10-class head, conv1/conv2/fc1/fc2 frozen, %d steps of training."):format(math.min(600, o.steps or 600)))
local f = run("finetune.lua", ("--net lenet5 --ckpt %s --dataset fashion-mnist --new-head 10 --freeze conv1,conv2,fc1,fc2"
  .. " --steps %d --lr 0.05 --out %s"):format(r.checkpoint, math.min(600, o.steps or 600), q(out .. "/newhead")))
say(("   -> the new head alone reaches test accuracy %.4f in %.0f s; saved %s\n"):format(f.accuracy, f.seconds, f.checkpoint))

local folder = os.getenv("SPORE_DEMO_IMAGES") or (root .. "/out/data/fashion-mnist-jpeg")
local rn, re, rp
local fh = io.open(folder .. "/0_tshirt-top", "rb")
if not fh then
  say("5. (skipped: no image folder at " .. folder .. "; `make demo` builds it with `make demo-data`)\n")
else
  fh:close()
  say("5. The ResNet path on a folder of JPEGs (" .. folder .. ": one subfolder per class): ResNet18 from a checkpoint,")
  say("   a new head sized from the folder (--new-head auto), the zoo's imagenet pipeline at 32x32, 10% held out.")
  spore.manual_seed(1)
  local start = out .. "/resnet18_init.ckpt"
  spore.save_checkpoint(spore.models.resnet18 { class_num = 1001 }, start)
  rn = run("finetune.lua", ("--net resnet18 --ckpt %s --data-folder %s --new-head auto --image-size 32 --val-split 0.1"
    .. " --crop-scale 0.5 --epochs 2 --lr 0.01 --out %s%s"):format(q(start), q(folder), q(out .. "/resnet"), cap))
  say(("   -> %d classes, %d training images: held-out accuracy %.4f after %d epochs in %.0f s; saved %s"):format(
    #rn.classes, rn.train_images, rn.accuracy, #rn.epochs, rn.seconds, rn.checkpoint))
  re = run("eval.lua", ("--net resnet18 --ckpt %s --data-folder %s --image-size 32 --val-split 0.1 --seed 1"):format(
    q(rn.checkpoint), q(folder)), true)
  say(("   -> eval.lua in a fresh process: accuracy %.4f on the same %d held-out images (same: %s)"):format(
    re.accuracy, re.samples, math.abs(re.accuracy - rn.accuracy) < 1e-9 and "yes" or "NO"))
  local p = io.popen("ls " .. q(folder .. "/7_sneaker") .. " | head -1")
  local one = p:read("*l")
  p:close()
  rp = run("predict.lua", ("--net resnet18 --ckpt %s --image-size 32 --top 3 %s"):format(q(rn.checkpoint),
    q(folder .. "/7_sneaker/" .. one)), true)
  local top = rp.predictions[1].top
  say(("   -> predict.lua 7_sneaker/%s: %s %.2f, %s %.2f, %s %.2f (names from classes.txt beside the checkpoint)\n"):format(
    one, top[1].name, top[1].p, top[2].name, top[2].p, top[3].name, top[3].p))
end

local plots = {}
for _, step in ipairs({ t, r, f, rn }) do
  if step.plot ~= nil and step.plot ~= json.null then plots[#plots + 1] = step.plot end
end
say("Run records (one JSON object per line) and loss/accuracy plots:")
for _, step in ipairs({ { "train", t }, { "resume", r }, { "newhead", f }, { "resnet", rn } }) do
  if step[2] then
  local p = step[2].plot
  say(("  %-8s %s  %s"):format(step[1], step[2].metrics or "-",
    (p ~= nil and p ~= json.null) and p or (o.no_plot and "(--no-plot)" or "(no plot: see the warning above)")))
  end
end
say("")
say("Inspect any checkpoint with:  luajit scripts/inspect.lua " .. r.checkpoint)
say("Explore in the REPL with:     luajit scripts/repl.lua")
local res = json.ordered({ out = out, plots = plots }, { "out", "plots" })
for _, kv in ipairs({ { "train", t }, { "eval", e }, { "resume", r }, { "newhead", f }, { "resnet", rn },
    { "resnet_eval", re }, { "predict", rp } }) do
  if kv[2] then
    kv[2]._json = nil
    res[kv[1]] = kv[2]
  end
end
return res
end)
