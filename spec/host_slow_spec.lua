-- spec/host_slow_spec.lua — the C host under valgrind memcheck (1,000 frames) and the two-thread
-- mode under ThreadSanitizer (make SANITIZE=thread): scripts/check_host.sh, several minutes.
local H = require("spec.helper")

describe("C host under valgrind and ThreadSanitizer #slow", function()
  it("frame_loop is memcheck-clean over 1,000 frames; two VMs on two threads are TSan-clean", function()
    local ckpt, why = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
    if not ckpt then pending(why) return end
    local out, rc = H.run("SPORE_FIXTURES=" .. H.fixtures_dir() .. " bash scripts/check_host.sh 2>&1")
    assert.equal(0, rc, out)
    assert.matches("valgrind clean", out, 1, true)
    assert.matches("ThreadSanitizer clean: 0 reports", out, 1, true)
  end)
end)
