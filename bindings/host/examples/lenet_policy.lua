-- lenet_policy.lua — a frame policy for bindings/host/examples/frame_loop.c.
-- init(ckpt) loads LeNet5 from a MindSpore checkpoint once (kept across reloads);
-- on_frame(camera) takes the host's 28x28 uint8 camera buffer (lent, not copied), runs the
-- MindSpore tutorial's pipeline (bilinear resize to 32x32, /255, (x-0.1307)/0.3081) and
-- LeNet5, and returns the action (the class, 0..9) and this script's version.
local VERSION = 1

function init(ckpt)
  spore.host.keep("lenet", function()
    local net = spore.models.lenet5{ num_class = 10 }
    spore.load_checkpoint(ckpt, { net = net })
    net:eval()
    -- the camera frame is copied into img; a one-image dataset applies the tutorial's transforms
    local img = spore.zeros({ 1, 28, 28 }, "uint8")
    local ds = spore.data.from_tensors(img, spore.zeros({ 1 }, "int32"), {
      batch = 1, shuffle = false,
      transforms = { spore.data.Resize({ 32, 32 }), spore.data.Rescale(1 / 255, 0),
                     spore.data.Normalize({ 0.1307 }, { 0.3081 }), spore.data.HWC2CHW() } })
    net(ds:batches()()) -- the first forward sizes the layers' buffers: not in frame 1's time
    return { net = net, img = img, ds = ds }
  end)
  return VERSION
end

function on_frame(camera)
  local s = spore.host.kept("lenet") or error("on_frame before init(ckpt)")
  s.img:copy_(camera)
  local x = s.ds:batches()()
  return s.net(x):argmax(), VERSION
end

-- for measuring the API's own cost
function on_empty(camera) end
function on_nothing() end
