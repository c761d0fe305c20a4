-- wrk script of bench/timer_load.py --driver wrk. Every wrk thread owns one connection
-- (run it as -t N -c N) and, in the timer phase, one user's token: it alternates
-- POST /api/v1/timer/start (the two child tasks in turn) with POST /api/v1/timer/stop, so
-- one user's requests are sequential, as a person's clicks are. In the health phase it
-- sends GET /health.
--
-- Environment: TT_WRK_MODE ("timer" or "health"); for the timer phase TT_WRK_TOKENS_FILE
-- (one bearer token per line, at least one per thread) and TT_WRK_TASKS (the two child
-- task ids, comma separated). done() prints one "TT_WRK {json}" line: the latency
-- percentiles in microseconds and, per thread, the answers that were as expected
-- (starts, stops; health requests count as stops) and the others (failures).

local mode = os.getenv("TT_WRK_MODE") or "timer"
local tokens = {}
local threads = {}

local function read_tokens()
  local path = os.getenv("TT_WRK_TOKENS_FILE")
  local f = assert(io.open(path or "", "r"), "TT_WRK_TOKENS_FILE is not readable")
  for line in f:lines() do
    if #line > 0 then
      tokens[#tokens + 1] = line
    end
  end
  f:close()
end

function setup(thread)
  local index = #threads + 1
  thread:set("mode", mode)
  if mode == "timer" then
    if #tokens == 0 then
      read_tokens()
    end
    assert(index <= #tokens, "more wrk threads than tokens")
    thread:set("token", tokens[index])
    thread:set("tasks", os.getenv("TT_WRK_TASKS"))
  end
  threads[index] = thread
end

function init(args)
  starts = 0
  stops = 0
  failures = 0
  sample = ""
  step = 0
  answered = 0
  if mode == "health" then
    cycle = { wrk.format("GET", "/health") }
    task_of = {}
    return
  end
  local a, b = string.match(tasks or "", "([^,]+),([^,]+)")
  assert(a and b, "TT_WRK_TASKS needs two task ids")
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  -- Built once: start A, stop, start B, stop.
  cycle = {
    wrk.format("POST", "/api/v1/timer/start", headers, '{"task_id":"' .. a .. '"}'),
    wrk.format("POST", "/api/v1/timer/stop", headers, "{}"),
    wrk.format("POST", "/api/v1/timer/start", headers, '{"task_id":"' .. b .. '"}'),
    wrk.format("POST", "/api/v1/timer/stop", headers, "{}"),
  }
  task_of = { a, nil, b, nil }
end

function request()
  step = step % #cycle + 1
  return cycle[step]
end

local function fail(what, status, body)
  failures = failures + 1
  if sample == "" then
    sample = what .. " -> " .. status .. ": " .. string.sub(body or "", 1, 200)
  end
end

function response(status, headers, body)
  if mode == "health" then
    if status == 200 then
      stops = stops + 1
    else
      fail("health", status, body)
    end
    return
  end
  answered = answered + 1
  local task = task_of[step]
  if answered == 1 and step == 2 then
    -- wrk calls request() of its first thread once to check the script, without sending
    -- it: that thread begins with a stop, which finds no running timer.
    if status ~= 200 or not string.find(body, '"stopped":null', 1, true) then
      fail("first stop", status, body)
    end
  elseif task ~= nil then
    -- A start answers 201 with the new running entry and stops nothing: the user's
    -- previous request was a stop (the benchmark stops every timer before a run).
    if status == 201 and string.find(body, '"task_id":"' .. task .. '"', 1, true)
        and string.find(body, '"stopped":null', 1, true) then
      starts = starts + 1
    else
      fail("start", status, body)
    end
  elseif status == 200 and string.find(body, '"stopped":{', 1, true) then
    -- A stop answers 200 with the entry it stopped (the one the last start created).
    stops = stops + 1
  else
    fail("stop", status, body)
  end
end

function done(summary, latency, requests)
  local per_thread = {}
  for i, thread in ipairs(threads) do
    local text = string.gsub(thread:get("sample"), '[%c"\\]', "?")
    per_thread[i] = string.format(
      '{"starts":%d,"stops":%d,"failures":%d,"sample":"%s"}',
      thread:get("starts"), thread:get("stops"), thread:get("failures"), text
    )
  end
  local e = summary.errors
  io.write(string.format(
    'TT_WRK {"duration_us":%d,"requests":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
      .. '"socket_errors":%d,"status_errors":%d,"threads":[%s]}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status,
    table.concat(per_thread, ",")
  ))
end
