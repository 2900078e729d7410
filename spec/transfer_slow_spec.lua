-- transfer_slow_spec.lua (#slow, make test-slow) — the image-folder transfer experiment end to
-- end, small: pretrain ResNet18 on Fashion-MNIST JPEGs, fine-tune on MNIST digit JPEGs with a new
-- head (every layer vs the new head alone), eval.lua in a fresh process on the saved checkpoint.
local H = spec_helper

describe("transfer learning on an image folder #slow", function()
  it("fine-tuning every layer beats the new head alone and chance; eval.lua gives the same accuracy", function()
    local mnist = H.fixture("mnist/t10k-images-idx3-ubyte.gz")
    if not mnist then pending("fixture missing: mnist (set SPORE_FIXTURES)") return end
    local d = H.tmpdir()
    local t0 = os.time()
    local out, rc = H.run("luajit " .. H.root .. "/scripts/transfer_experiment.lua --out " .. d
      .. " --pretrain-per-class 100 --pretrain-epochs 2 --per-class 50 --epochs 6 --quiet 2>" .. d .. "/log.txt")
    assert.equal(0, rc, out .. io.open(d .. "/log.txt"):read("*a"))
    local r = require("spore.json").decode(out:match("([^\n]+)\n?$"))
    print(("\n  transfer (pretrain %d images, fine-tune %d, %d held out, %dx%d, %d epochs): full %.3f,"
      .. " new head only %.3f, chance 0.1; eval.lua %.3f (%d s)"):format(r.pretrain.images, r.finetune_images,
      r.val_images, r.image_size, r.image_size, r.epochs, r.full_accuracy, r.head_only_accuracy, r.eval_accuracy,
      os.time() - t0))
    assert.is_true(r.eval_matches)
    -- measured: full 0.684, new head only 0.332 (README); margins well inside those
    assert.is_true(r.full_accuracy > r.head_only_accuracy + 0.15, "full " .. r.full_accuracy .. " vs head " .. r.head_only_accuracy)
    assert.is_true(r.full_accuracy > 0.45 and r.head_only_accuracy > 0.15)
  end)
end)
