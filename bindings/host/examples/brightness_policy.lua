-- brightness_policy.lua — the second VM's script in frame_loop's two-thread mode: the action
-- is the index (0..27) of the brightest row of the 28x28 camera frame, summed by the engine.
function on_frame(camera)
  local best, besti = -1, 0
  for r = 1, 28 do
    local v = camera:narrow(1, r, 1):sum()
    if v > best then best, besti = v, r - 1 end
  end
  return besti
end
