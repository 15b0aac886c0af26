-- The Lua side of the Keithley 2636B emulator: the bridge to the Python-backed instrument
-- objects, the sandbox, the instruction budget, scripts. Loaded by labrram.sim.keithley2600_lua.
local bridge = ...
local index_cb, newindex_cb, call_cb, len_cb, name_cb = bridge.index, bridge.newindex, bridge.call, bridge.len, bridge.name
local MARK, HOOK_STEP, EXIT = bridge.mark, bridge.hook_step, bridge.exit_marker
local G = _G
local sethook = debug.sethook
local rawerror, rawpcall, rawxpcall, rawload = error, pcall, xpcall, load
local type, select, tostring, setmetatable, rawget = type, select, tostring, setmetatable, rawget
local pack, unpack = table.pack, table.unpack
local cocreate, coresume = coroutine.create, coroutine.resume

-- instruction budget: a count hook on every thread; once exceeded, nothing can catch it
local used, limit, aborted = 0, math.huge, nil
local function hook()
  if aborted then rawerror(aborted, 0) end
  used = used + 1
  if used > limit then
    aborted = bridge.budget_message
    rawerror(aborted, 0)
  end
end
sethook(hook, "", HOOK_STEP)

local function pass(...)
  if aborted then rawerror(aborted, 0) end
  return ...
end

-- proxies for the instrument's Python objects
local proxies = setmetatable({}, {__mode = "v"})
local ids = setmetatable({}, {__mode = "k"})
local proxy_for

local function check(st, a, ...)
  if st == 0 then return a, ... end
  if st == 1 then return proxy_for(a) end
  rawerror(a, 2)
end

local function conv1(v)
  local id = ids[v]
  if id then return MARK .. id end
  return v
end

local function conv(...)
  local n = select("#", ...)
  if n == 0 then return end
  if n == 1 then return conv1((...)) end
  local t = pack(...)
  for i = 1, n do t[i] = conv1(t[i]) end
  return unpack(t, 1, n)
end

proxy_for = function(id)
  local p = proxies[id]
  if p then return p end
  local cache = {}
  p = {}
  local mt = {}
  mt.__index = function(_, k)
    local v = cache[k]
    if v ~= nil then return v end
    local st, a, b = index_cb(id, k)
    if st == 0 then return a end
    if st == 1 then
      v = proxy_for(a)
      if b then cache[k] = v end
      return v
    end
    if st == 2 then
      v = function(...) return check(call_cb(id, k, conv(...))) end
      cache[k] = v
      return v
    end
    if st == 3 then cache[k] = a; return a end
    rawerror(a, 2)
  end
  mt.__newindex = function(_, k, v)
    local err = newindex_cb(id, k, conv1(v))
    if err then rawerror(err, 2) end
  end
  mt.__len = function()
    local st, a = len_cb(id)
    if st == 0 then return a end
    rawerror(a, 2)
  end
  mt.__call = function(_, ...) return check(call_cb(id, nil, conv(...))) end
  mt.__tostring = function() return name_cb(id) end
  mt.__metatable = false
  setmetatable(p, mt)
  proxies[id] = p
  ids[p] = id
  return p
end

-- the sandbox
G.pcall = function(f, ...) return pass(rawpcall(f, ...)) end
G.xpcall = function(f, h, ...) return pass(rawxpcall(f, h, ...)) end
local function cocreate_hooked(f)
  local co = cocreate(f)
  sethook(co, hook, "", HOOK_STEP)
  return co
end
G.coroutine = {
  create = cocreate_hooked,
  resume = function(co, ...) return pass(coresume(co, ...)) end,
  wrap = function(f)
    local co = cocreate_hooked(f)
    return function(...)
      local r = pack(coresume(co, ...))
      if aborted then rawerror(aborted, 0) end
      if not r[1] then rawerror(r[2], 0) end
      return unpack(r, 2, r.n)
    end
  end,
  yield = coroutine.yield, status = coroutine.status, running = coroutine.running,
  isyieldable = coroutine.isyieldable, close = coroutine.close,
}
G.load = function(chunk, name, mode, env)
  if type(chunk) ~= "string" then return nil, "load: only source strings can be loaded on this instrument" end
  return rawload(chunk, name or "=(load)", "t", env or G)
end
G.loadstring = function(s, name) return G.load(s, name) end
G.exit = function()
  aborted = EXIT
  rawerror(EXIT, 0)
end
G.os, G.io, G.debug, G.package, G.require, G.dofile, G.loadfile, G.python = nil, nil, nil, nil, nil, nil, nil, nil
G.string.dump = nil
-- Lua 5.0 names of the instrument's Lua
G.unpack = unpack
G.table.getn = function(t) return #t end
G.math.mod = math.fmod
G.string.gfind = string.gmatch

-- bit library of TSP (bit indexes count from 1)
local function int(v, what)
  local i = math.tointeger(math.floor(v))
  if not i then rawerror("bit." .. what .. ": integer expected", 3) end
  return i
end
G.bit = {
  bitand = function(a, b) return int(a, "bitand") & int(b, "bitand") end,
  bitor = function(a, b) return int(a, "bitor") | int(b, "bitor") end,
  bitxor = function(a, b) return int(a, "bitxor") ~ int(b, "bitxor") end,
  test = function(v, i) return (int(v, "test") >> (int(i, "test") - 1)) & 1 == 1 end,
  get = function(v, i) return int(v, "get") & (1 << (int(i, "get") - 1)) end,
  set = function(v, i) return int(v, "set") | (1 << (int(i, "set") - 1)) end,
  clear = function(v, i) return int(v, "clear") & ~(1 << (int(i, "clear") - 1)) end,
  toggle = function(v, i) return int(v, "toggle") ~ (1 << (int(i, "toggle") - 1)) end,
  getfield = function(v, i, w) return (int(v, "getfield") >> (int(i, "getfield") - 1)) & ((1 << int(w, "getfield")) - 1) end,
  setfield = function(v, i, w, f)
    local m = ((1 << int(w, "setfield")) - 1) << (int(i, "setfield") - 1)
    return (int(v, "setfield") & ~m) | ((int(f, "setfield") << (int(i, "setfield") - 1)) & m)
  end,
}

-- scripts
local user_scripts = {}
local script = {user = {scripts = user_scripts}}
local function make_script(f, source, name)
  local s = {source = source, name = name}
  s.run = function(...) return f(...) end
  s.save = function() end
  s.list = function() G.print(source) end
  return setmetatable(s, {__call = function(_, ...) return f(...) end})
end
local function new_script(source, name, level)
  local chunkname = "=" .. ((name and name ~= "") and name or "script")
  local f, err = rawload(source, chunkname, "t", G)
  if not f then return nil, err end
  local s = make_script(f, source, name or "")
  if name and name ~= "" then
    G[name] = s
    user_scripts[name] = s
  else
    script.anonymous = s
  end
  return s
end
script.new = function(source, name)
  if type(source) ~= "string" then rawerror("script.new: source string expected", 2) end
  local s, err = new_script(source, name)
  if not s then rawerror(err, 2) end
  return s
end
script.newautorun = script.new
script.delete = function(name)
  if user_scripts[name] then
    user_scripts[name] = nil
    if rawget(G, name) then G[name] = nil end
  end
end
script.run = function()
  if script.anonymous then return script.anonymous.run() end
end
G.script = script
G.run = script.run

-- what Python calls
local api = {}
api.install_node = function(name, id) G[name] = proxy_for(id) end
api.install_function = function(name, id)
  G[name] = function(...) return check(call_cb(id, name, conv(...))) end
end
api.proxy = function(id) return proxy_for(id) end
api.tostring = function(v) return tostring(v) end
api.abort = function(msg) aborted = msg end
api.load_script = function(name, source)
  local s, err = new_script(source, name)
  if not s then return "syntax", err end
  return "ok", s.run
end
api.run = function(code, chunkname, budget_steps, budget_message)
  used, limit, aborted = 0, budget_steps, nil
  bridge.budget_message = budget_message
  local f, err
  if type(code) == "function" then
    f = code
  else
    f, err = rawload(code, chunkname, "t", G)
    if not f then return "syntax", err end
  end
  local ok, e = rawpcall(f)
  local ab = aborted
  aborted = nil
  used, limit = 0, math.huge
  if ok or ab == EXIT then return "ok" end
  if ab then return "budget", ab end
  return "runtime", e
end
return api
