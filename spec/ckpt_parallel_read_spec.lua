-- ckpt_parallel_read_spec.lua — a .ckpt's contents are read by libgomp's threads beside the
-- parse, in pieces that end on 2 MiB boundaries of their destination, straight into the
-- tensors (engine/io/ckpt_read.c, q_push / q_work). Sizes around the 1 MiB and 64 KiB marks,
-- odd lengths and several big tensors in a row come back bit for bit, and equal to a load
-- through the decrypting (in-memory, single-threaded) path.
local spore = require("spore")
local H = spec_helper

describe(".ckpt contents read by the queue's threads", function()
  it("round-trips big and odd-sized tensors bit for bit", function()
    local dir = H.tmpdir()
    spore.manual_seed(21)
    local ts = {}
    -- below, at and above 64 KiB (16,384 floats: queued whole from there) and 1 MiB
    -- (262,144), odd lengths, and a 33 MB one
    for i, n in ipairs({ 16383, 16384, 16385, 262143, 262144, 262145, 1234567, 3000001, 8650752 + 3 }) do
      ts[("t%d"):format(i)] = spore.randn({ n })
    end
    local path = dir .. "/big.ckpt"
    spore.save_checkpoint(ts, path)
    local d = spore.load_checkpoint(path)
    for k, t in pairs(ts) do
      assert.same(t:shape(), d[k]:shape(), k)
      assert.equal(t:numel(), t:count_equal(d[k]), k .. " differs")
    end
    -- the same file through the encrypted path (decrypted in memory, no pread split)
    local epath = dir .. "/big_enc.ckpt"
    spore.save_checkpoint(ts, epath, { enc_key = "0123456789abcdef", enc_mode = "AES-GCM" })
    local e = spore.load_checkpoint(epath, { dec_key = "0123456789abcdef", dec_mode = "AES-GCM" })
    for k, t in pairs(ts) do assert.equal(t:numel(), e[k]:count_equal(d[k]), k .. " differs between paths") end
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
