--- spore.class — the one way lua/spore makes classes.
--   local class = require("spore.class")
--   local Animal = class("Animal")
--   function Animal:__init(name) self.name = name end
--   function Animal:__tostring() return getmetatable(self).__name .. "(" .. self.name .. ")" end
--   local Dog = class("Dog", Animal)
--   local d = Dog("rex")            -- or Dog.new("rex"); tostring(d) == "Dog(rex)"
--
-- class(name, parent) → cls. Instances have cls as their metatable: cls.__index = cls,
-- cls.__name = name, cls.super = parent (nil for a root class). Method lookup falls back to
-- the parent through the class's own metatable. Metamethods (__call, __tostring, __len,
-- __eq, ...) are not found through __index, so the ones the parent defines are copied into
-- the subclass, and a metamethod defined on a class later is passed down to the subclasses
-- that had not overridden it: an instance's metamethod is always one plain table field of
-- its metatable (net(x) is one __call, no lookup chain). A class that REdefines a metamethod
-- it already had (its own or a copy) after subclasses were made does not reach them: define
-- a class's metamethods before subclassing it (the file order does that).
--
-- Construction: cls(...) calls cls.new(...). The default new is
--   local o = setmetatable({}, cls); if o.__init then o:__init(...) end; return o
-- and a class may define its own new (the optimizers do). Inside __init, error(msg, 3)
-- names the caller of cls(...) / cls.new(...).

-- the metamethods an instance can use (Lua 5.1 / LuaJIT, plus the 5.2+ names LuaJIT
-- honours with 5.2 compatibility); __index is the class itself and never copied
local METAMETHODS = {}
for _, k in ipairs({ "__call", "__tostring", "__len", "__eq", "__lt", "__le", "__concat", "__unm", "__add",
  "__sub", "__mul", "__div", "__mod", "__pow", "__newindex", "__gc", "__mode", "__metatable", "__pairs",
  "__ipairs", "__close" }) do METAMETHODS[k] = true end

-- class → its direct subclasses (weak: a class nobody holds may go)
local children = setmetatable({}, { __mode = "k" })

-- metamethod k, new on cls, reaches every subclass that has none of its own
local function pass_down(cls, k, v)
  rawset(cls, k, v)
  for sub in pairs(children[cls]) do
    if rawget(sub, k) == nil then pass_down(sub, k, v) end
  end
end

local function class(name, parent)
  if type(name) ~= "string" then error("class: name must be a string, got " .. type(name), 2) end
  if parent ~= nil and (type(parent) ~= "table" or children[parent] == nil) then
    error("class " .. name .. ": parent must be a class made by spore.class", 2)
  end
  local cls = {}
  children[cls] = setmetatable({}, { __mode = "k" })
  if parent then
    for k in pairs(METAMETHODS) do
      local v = rawget(parent, k)
      if v ~= nil then cls[k] = v end
    end
    children[parent][cls] = true
  end
  cls.__index = cls
  cls.__name = name
  cls.super = parent
  --- the default constructor (a class may replace it by defining its own new)
  function cls.new(...)
    local o = setmetatable({}, cls)
    if o.__init then o:__init(...) end
    return o
  end
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...) return c.new(...) end, -- a tail call: errors at level 2 in new name the caller
    __newindex = function(c, k, v)
      if METAMETHODS[k] then pass_down(c, k, v) else rawset(c, k, v) end
    end,
  })
end

return class
