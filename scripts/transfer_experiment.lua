-- transfer_experiment.lua — the image-folder transfer-learning path end to end, with figures:
--   1. pretrain a ResNet18 briefly on one image folder (Debian's Fashion-MNIST written as
--      JPEGs, 32x32) and save a checkpoint — no pretrained weights can be downloaded;
--   2. fine-tune it on another folder it has never seen (MNIST digits as JPEGs: the fixtures'
--      idx files, written out by build_image_folder.lua) with a new head (--new-head auto),
--      in a fresh process: all layers trained;
--   3. the baseline: the same with everything but the new head frozen;
--   4. eval.lua on step 2's saved checkpoint in a fresh process: the same accuracy.
-- Every step runs the real scripts (finetune.lua, eval.lua, predict.lua) as a user would.
--   luajit scripts/transfer_experiment.lua [--out DIR] [--pretrain-per-class N] [--per-class N]
--     [--epochs N] [--pretrain-epochs N] [--mnist DIR]
-- Ends with one JSON line of the figures. `make test-slow` runs a smaller version.
dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "boot.lua")
local cli = require("spore.cli")

local spec = {
  name = "transfer_experiment.lua",
  summary = "Pretrain a ResNet18 on Fashion-MNIST JPEGs, fine-tune it on MNIST digit JPEGs: full vs new-head-only.",
  options = {
    { "out", default = "out/transfer" },
    { "--pretrain-per-class", "int", 100, "Fashion-MNIST training images per class for the pretraining" },
    { "--pretrain-epochs", "int", 2, "pretraining epochs" },
    { "--per-class", "int", 50, "MNIST digit images per class to fine-tune on (and as many held out)" },
    { "epochs", default = 6 },
    { "--image-size", "int", 32, "network input size" },
    { "--mnist", "string", nil, "folder of the MNIST idx files (default: $SPORE_FIXTURES/mnist)" },
    { "--pretrained", "string", nil, "reuse this pretrained checkpoint (a previous run's) instead of step 2" },
    { "lr", default = 0.05, help = "fine-tuning learning rate (both runs)" },
    { "seed", default = 1 },
    "quiet",
  },
}

cli.main(spec, function(o)
  local spore = require("spore")
  local json = require("spore.json")
  local root = spore._root
  local say = function(s) io.stderr:write(s, "\n") end
  local function sh(cmd)
    if not o.quiet then
      local shown, i = cmd, cmd:find(root .. "/scripts/", 1, true)
      while i do
        shown = shown:sub(1, i - 1) .. "scripts/" .. shown:sub(i + #root + 9)
        i = shown:find(root .. "/scripts/", 1, true)
      end
      say("  $ " .. shown)
    end
    local p = io.popen(cmd, "r")
    local out = p:read("*a")
    local ok = p:close()
    local last = out:match("([^\n]+)\n?$")
    if not ok or not last then error("step failed: " .. cmd, 0) end
    return json.decode(last)
  end
  local mnist = o.mnist or ((os.getenv("SPORE_FIXTURES") or (root .. "/../shared/fixtures")) .. "/mnist")
  local f = io.open(mnist .. "/t10k-images-idx3-ubyte.gz", "rb")
  if not f then error("MNIST idx files not found in " .. mnist .. " (set SPORE_FIXTURES or --mnist DIR)", 0) end
  f:close()
  local out = o.out
  os.execute("mkdir -p '" .. out .. "'")
  local lj = "luajit " .. root .. "/scripts/"
  local size = o.image_size
  local t0 = spore.clock()

  -- the folders (set-up time: Debian's cjpeg writes the JPEGs)
  say("1. image folders: Fashion-MNIST (pretraining) and MNIST digits (the new task), as JPEG files")
  if not o.pretrained then
    sh(("%sbuild_image_folder.lua --out %s/fashion --split train --names fashion --per-class %d"):format(
      lj, out, o.pretrain_per_class))
  end
  sh(("%sbuild_image_folder.lua --out %s/digits-train --idx-dir %s --split train --names digits --per-class %d"):format(
    lj, out, mnist, o.per_class))
  sh(("%sbuild_image_folder.lua --out %s/digits-val --idx-dir %s --split test --names digits --per-class %d"):format(
    lj, out, mnist, o.per_class))

  -- 2. pretraining (library API: ImageFolderDataset + the zoo pipeline + Model.train)
  local data = spore.data
  local pre_ckpt, pre_res = out .. "/pretrained_resnet18_fashion.ckpt", nil
  if o.pretrained then
    pre_ckpt = o.pretrained
    say("2. pretrained checkpoint reused: " .. pre_ckpt)
    pre_res = { reused = pre_ckpt }
  else
  say(("2. pretrain ResNet18 on %d Fashion-MNIST JPEGs at %dx%d for %d epochs"):format(
    10 * o.pretrain_per_class, size, size, o.pretrain_epochs))
  spore.manual_seed(o.seed)
  local pre = data.ImageFolderDataset(out .. "/fashion", { batch = 32, shuffle = true, seed = o.seed, drop_remainder = true,
    transforms = data.zoo_pipeline("imagenet", { train = true, image_size = size, scale = { 0.5, 1.0 } }) })
  local net = spore.models.resnet18 { class_num = 10 }
  local loss = spore.nn.SoftmaxCrossEntropyWithLogits { sparse = true, reduction = "mean" }
  local opt = spore.optim.Momentum(net:trainable_params(), 0.05, 0.9)
  local model = spore.Model(net, loss, opt, { metrics = { "accuracy" } })
  local tp = spore.clock()
  local last = {}
  model:train(o.pretrain_epochs, pre, { callbacks = { {
    on_train_epoch_end = function(_, ctx) last[#last + 1] = ctx.net_outputs
      if not o.quiet then say(("   epoch %d: last loss %.3f"):format(ctx.cur_epoch_num, ctx.net_outputs)) end end } } })
  local pre_eval = model:eval(pre:with({ transforms = data.zoo_pipeline("imagenet", { image_size = size,
    eval_resize = math.floor(size * 256 / 224 + 0.5) }), shuffle = false, drop_remainder = false }))
  spore.save_checkpoint(net, pre_ckpt)
  local pre_s = spore.clock() - tp
  say(("   -> train-set accuracy %.3f after %.0f s; saved %s"):format(pre_eval.accuracy, pre_s, pre_ckpt))
  pre_res = { images = pre:size(), epochs = o.pretrain_epochs, train_accuracy = pre_eval.accuracy, seconds = pre_s }
  net, opt, model = nil, nil, nil
  collectgarbage()
  end

  -- 3. fine-tune (fresh processes): all layers vs the new head alone
  local common = ("--net resnet18 --ckpt %s --data-folder %s/digits-train --val-folder %s/digits-val --new-head auto"
    .. " --image-size %d --crop-scale 0.5 --no-flip --epochs %d --batch 32 --lr %g --seed %d --quiet"):format(
    pre_ckpt, out, out, size, o.epochs, o.lr, o.seed)
  say(("3. fine-tune on %d digit JPEGs (%d held out), %d epochs, new 10-class head: every layer trained"):format(
    10 * o.per_class, 10 * o.per_class, o.epochs))
  local full = sh(lj .. "finetune.lua " .. common .. " --out " .. out .. "/full")
  say(("   -> held-out accuracy %.3f (%.0f s), saved %s"):format(full.accuracy, full.seconds, full.checkpoint))
  say("4. baseline: the same with everything but the new head frozen")
  local head = sh(lj .. "finetune.lua " .. common .. " --freeze conv1,bn1,layer1,layer2,layer3,layer4 --out " .. out .. "/head")
  say(("   -> held-out accuracy %.3f (%.0f s)"):format(head.accuracy, head.seconds))

  -- 4. eval.lua in a fresh process on the saved checkpoint
  say("5. eval.lua on the fine-tuned checkpoint, in a fresh process")
  local ev = sh(("%seval.lua --net resnet18 --ckpt %s --data-folder %s/digits-val --image-size %d --batch 32 --quiet"):format(
    lj, full.checkpoint, out, size))
  say(("   -> accuracy %.3f, loss %.4f on %d images (finetune.lua's last: %.3f, %.4f)"):format(ev.accuracy, ev.loss,
    ev.samples, full.accuracy, full.epochs[#full.epochs].loss))
  local pr = sh(("%spredict.lua --net resnet18 --ckpt %s --image-size %d --top 3 --quiet %s/digits-val/7/$(ls %s/digits-val/7 | head -1)"):format(
    lj, full.checkpoint, size, out, out))

  local res = json.ordered()
  res.pretrain = pre_res
  res.lr = o.lr
  res.finetune_images, res.val_images, res.epochs, res.image_size = full.train_images, full.val_images, o.epochs, size
  res.full_accuracy = full.accuracy
  res.head_only_accuracy = head.accuracy
  res.chance = 0.1
  res.full_per_epoch = full.epochs
  res.head_only_per_epoch = head.epochs
  res.eval_accuracy, res.eval_loss = ev.accuracy, ev.loss
  res.eval_matches = math.abs(ev.accuracy - full.accuracy) < 1e-9 and math.abs(ev.loss - full.epochs[#full.epochs].loss) < 1e-4
  res.predict_example = pr.predictions[1]
  res.seconds = spore.clock() - t0
  say(("figures: full fine-tune %.3f vs new-head-only %.3f vs chance 0.100; eval.lua in a fresh process %.3f (%s)"):format(
    res.full_accuracy, res.head_only_accuracy, res.eval_accuracy, res.eval_matches and "same" or "DIFFERENT"))
  return res
end)
