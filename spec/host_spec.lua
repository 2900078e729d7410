-- spec/host_spec.lua — the C host API (bindings/host, spore_host.h), the install layout and
-- the `spore` command. The C checks live in bindings/host/examples/host_check.c (built by
-- `make`); the install is checked in a temporary prefix with an out-of-tree host built with
-- nothing but pkg-config, run with an empty environment.
local H = require("spec.helper")

local BUILD = os.getenv("BUILD") or "build"
local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
-- an empty environment (under `make SANITIZE=1 test` the sanitizer runtimes stay preloaded)
local EMPTY_ENV = "env -i PATH=/usr/bin:/bin "
if os.getenv("LD_PRELOAD") then
  EMPTY_ENV = EMPTY_ENV .. "LD_PRELOAD=" .. sh_quote(os.getenv("LD_PRELOAD")) .. " ASAN_OPTIONS=detect_leaks=0 "
end

describe("C host API", function()
  it("keeps its promises: errors, budgets, memory limits, lent buffers, reload (host_check)", function()
    local out, rc = H.run(BUILD .. "/host_check 2>&1")
    assert.equal(0, rc, out)
    assert.matches("host_check: %d+ checks, 0 failed", out)
    -- the checks that matter most, by name
    for _, what in ipairs({ "while true do end: SPORE_TIMEOUT", "a loop that pcalls the loop is interrupted",
      "Lua allocation past the limit", "engine tensors past the limit", "a view kept past the call is an error",
      "the kept value survived the reload", "and the previous version keeps running",
      "an edit of a required module is picked up", "a hot loop", "os.exit cannot end the host" }) do
      assert.matches("ok   " .. what, out, 1, true)
    end
  end)

  it("the smallest host exchanges a lent buffer and a copied result", function()
    local out, rc = H.run(BUILD .. "/spore_host_example " .. H.root .. " 2>&1")
    assert.equal(0, rc, out)
    assert.matches("y = [[28, 64], [64, 154]]", out, 1, true)
  end)

  it("frame_loop: LeNet5 actions as accurate as eval.lua on the same images; two threads; live edit", function()
    local ckpt, why = H.fixture("mindspore/checkpoint_lenet-1_1875.ckpt")
    if not ckpt then pending(why) return end
    local fx = H.fixtures_dir()
    local env = "SPORE_FIXTURES=" .. sh_quote(fx) .. " "
    local n = 300
    local out, rc = H.run(env .. BUILD .. "/frame_loop --frames " .. n .. " --dt-us 500 --budget-ms 100 --overhead-calls 2000 --json 2>&1")
    assert.equal(0, rc, out)
    local correct = tonumber(out:match('"correct":(%d+)'))
    local ev, erc = H.run("luajit scripts/eval.lua --ckpt " .. sh_quote(ckpt) .. " --dataset mnist --data "
      .. sh_quote(fx .. "/mnist") .. " --limit " .. n .. " --quiet 2>&1")
    assert.equal(0, erc, ev)
    local eacc = tonumber(ev:match('"accuracy":([%d.]+)'))
    assert.is_true(correct ~= nil and eacc ~= nil, out .. ev)
    assert.equal(math.floor(eacc * n + 0.5), correct) -- the same images right, as eval.lua
    assert.is_true(tonumber(out:match('"empty_call_us":([%d.]+)')) < 50, out) -- a loose bound: 2 shared cores
    out, rc = H.run(env .. BUILD .. "/frame_loop --mode 2 --frames 200 --dt-us 500 --budget-ms 100 --json 2>&1")
    assert.equal(0, rc, out)
    assert.matches('"same_as_alone":true', out, 1, true)
    out, rc = H.run(env .. BUILD .. "/frame_loop --mode 3 --frames 200 --dt-us 1000 --budget-ms 100 --json 2>&1")
    assert.equal(0, rc, out)
    assert.matches('"dropped":0', out, 1, true)
    local first = tonumber(out:match('"first_new":(%-?%d+)'))
    assert.is_true(first ~= nil and first >= 100 and first < 200, out)
  end)
end)

describe("install", function()
  it("make install PREFIX=tmp: an out-of-tree host builds with pkg-config alone and runs with an empty environment", function()
    local prefix = H.tmpdir()
    local out, rc = H.run("make -s install PREFIX=" .. prefix .. " 2>&1")
    assert.equal(0, rc, out)
    for _, f in ipairs({ "lib/libspore.so", "lib/libspore_host.so", "include/spore.h", "include/spore_host.h",
      "lib/pkgconfig/spore.pc", "share/lua/5.1/spore/init.lua", "share/spore/bindings/ffi/lib.lua",
      "share/spore/bindings/host/vm.lua", "share/spore/scripts/eval.lua", "bin/spore",
      "share/doc/spore/LICENSE", "share/doc/spore/api/index.html" }) do
      assert.is_true(H.run("test -e " .. prefix .. "/" .. f .. " && echo yes") == "yes\n", "missing " .. f)
    end
    local dir = H.tmpdir()
    H.write_file(dir .. "/host.c", [[
#include <spore_host.h>
#include <stdio.h>
int main(void) {
    spore_vm *vm;
    if (spore_vm_open(&vm, NULL)) { fprintf(stderr, "%s\n", spore_vm_error(NULL)); return 1; }
    float x[3] = {1, 2, 3};
    spore_value a = spore_tensor(x, SP_FLOAT32, 1, (int64_t[]){3}), r = {0};
    int st = spore_vm_dostring(vm, "function f(t) return t:sum() * 2, spore.version end");
    if (!st) st = spore_vm_call(vm, "f", &a, 1, &r, 1);
    if (st) { fprintf(stderr, "%s\n", spore_vm_error(vm)); return 1; }
    printf("sum*2 = %g\n", r.number);
    spore_vm_close(vm);
    return 0;
}
]])
    local pc = "env -i PATH=/usr/bin:/bin PKG_CONFIG_PATH=" .. prefix .. "/lib/pkgconfig "
    out, rc = H.run("cd " .. dir .. " && " .. pc .. "sh -c 'cc -std=c11 -Wall -Werror host.c $(pkg-config --cflags --libs spore) -o host' 2>&1")
    assert.equal(0, rc, out)
    -- no LD_LIBRARY_PATH, SPORE_ROOT, LUA_PATH: the install layout alone
    out, rc = H.run("cd / && " .. EMPTY_ENV .. dir .. "/host 2>&1")
    assert.equal(0, rc, out)
    assert.equal("sum*2 = 12\n", out)
    -- and with SPORE_ROOT pointing at the prefix (#14: this once failed with "module 'spore' not found")
    out, rc = H.run("cd / && " .. EMPTY_ENV .. "SPORE_ROOT=" .. prefix .. " " .. dir .. "/host 2>&1")
    assert.equal(0, rc, out)
    -- the installed example hosts build the same way (their Makefile uses pkg-config alone)
    out, rc = H.run("cp " .. prefix .. "/share/spore/examples/* " .. dir .. "/ && cd " .. dir .. " && " .. pc
      .. "make -s frame_loop 2>&1 && test -x frame_loop")
    assert.equal(0, rc, out)
    -- the spore command from the prefix
    out, rc = H.run("cd / && " .. EMPTY_ENV .. prefix .. "/bin/spore eval --help 2>&1")
    assert.equal(0, rc, out)
    assert.matches("--ckpt", out, 1, true)
    out, rc = H.run("cd / && " .. EMPTY_ENV .. prefix .. "/bin/spore evl 2>&1")
    assert.equal(2, rc, out)
    assert.matches("did you mean 'eval'", out, 1, true)
    os.execute("rm -rf " .. prefix .. " " .. dir)
  end)
end)

describe("the spore command in the tree", function()
  it("dispatches to scripts/<command>.lua and lists its commands", function()
    local out, rc = H.run("cd /tmp && " .. H.root .. "/scripts/spore --help 2>&1")
    assert.equal(0, rc, out)
    for _, c in ipairs({ "eval", "train", "finetune", "inspect", "convert", "repl" }) do
      assert.matches("  " .. c .. " ", out, 1, true)
    end
    out, rc = H.run("cd /tmp && " .. H.root .. "/scripts/spore 2>&1")
    assert.equal(2, rc, out)
    out, rc = H.run("cd /tmp && " .. H.root .. "/scripts/spore inspect --help 2>&1")
    assert.equal(0, rc, out)
  end)
end)
