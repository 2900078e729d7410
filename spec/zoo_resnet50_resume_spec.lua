-- zoo_resnet50_resume_spec.lua (#slow, `make test-slow`) — the model zoo's ResNet50 recipe,
-- translated to spore (scripts/zoo/resnet50_resume_check.lua), resumes a MindSpore-written
-- ResNet50 checkpoint under loss scale 1024, label smoothing 0.1, weight decay 1e-4 and the
-- recipe's lr array, and matches MindSpore's own 3-step continuation: losses and BatchNorm
-- statistics within 1e-5 relative, weights within 1e-3 (with the float32 noise floor
-- printed; a measure whose own floor is above its tolerance is reported FAIL beside it, and
-- this spec then accepts the check's exit status 4). The checkpoints (about 800 MB) are not committed: they come from
-- scripts/gen/gen_ms_resnet50_resume.py into build/zoo_resnet50/; without them this is
-- pending, with the command to make them.
local H = spec_helper

describe("model zoo ResNet50 recipe resumes a MindSpore checkpoint #slow", function()
  it("3 steps match MindSpore's continuation (losses, BN statistics 1e-5; weights 1e-3)", function()
    local f = io.open(H.root .. "/build/zoo_resnet50/resume.ckpt", "rb")
    if not f then
      pending("build/zoo_resnet50/resume.ckpt missing: run /work/venv/bin/python scripts/gen/gen_ms_resnet50_resume.py "
        .. "--zoo ZOO (see its docstring)")
      return
    end
    f:close()
    local lib = os.getenv("SPORE_LIB") or (H.root .. "/build/libspore.so")
    local out, rc = H.run(("cd '%s' && SPORE_LIB='%s' luajit scripts/zoo/resnet50_resume_check.lua 2>&1"):format(H.root, lib))
    print("\n" .. out)
    -- 0: every measure within its tolerance; 4: the only ones above are those whose float32
    -- noise floor (MindSpore's own, with its images one ulp up) is itself above the tolerance,
    -- printed as FAIL with the floor beside them; 1 (a real mismatch) fails this spec
    assert.truthy(rc == 0 or rc == 4, out)
    if rc == 4 then print("(passes only at the float32 noise floor: see the FAIL lines above)") end
  end)
end)
