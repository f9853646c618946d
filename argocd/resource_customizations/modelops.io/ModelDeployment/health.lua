-- Argo CD health of a modelops.io ModelDeployment. Argo CD runs this with the live object in `obj`.
-- Healthy: the version in the spec serves all traffic (Promoted) and monitoring finds it fine.
-- Progressing: gates or canary analysis running, or the operator has not yet seen the latest spec.
-- Suspended: the rollout is paused (by request, or waiting for approvals).
-- Degraded: invalid spec, gates failed, rolled back (the spec's version is not running), or condition Degraded
-- True, or Unknown (NoData: monitoring had no data for degradedAfter checks in a row, so nobody can say the model is
-- fine; it is not Progressing either, since it does not resolve by itself), or condition Blocked True (an object the
-- operator must write is someone else's: its status stays at the generation before), or condition RouteAccepted
-- False (the Gateway's controller rejected the route the operator wrote).
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function with_message(default, status)
  if status.message ~= nil and status.message ~= "" then
    return default .. ": " .. status.message
  end
  return default
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local blocked = condition(status, "Blocked")
if blocked ~= nil and blocked.status == "True" then
  hs.status = "Degraded"
  hs.message = "Blocked (" .. (blocked.reason or "Blocked") .. "): " .. (blocked.message or "")
  return hs
end
local route = condition(status, "RouteAccepted")
if route ~= nil and route.status == "False" then
  hs.status = "Degraded"
  hs.message = "Route rejected by the Gateway (" .. (route.reason or "") .. "): " .. (route.message or "")
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
local version = status.candidateVersion or (obj.spec and obj.spec.model and obj.spec.model.version) or "?"

if phase == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = with_message("Invalid spec", status)
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = with_message("Version " .. version .. " failed its gates", status)
  return hs
end
if phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = with_message("Version " .. version .. " was rolled back; " .. (status.stableVersion or "the stable version") .. " serves", status)
  return hs
end
if phase == "Paused" or status.paused == true then
  hs.status = "Suspended"
  hs.message = with_message("Rollout of " .. version .. " paused at " .. (status.canaryWeight or 0) .. "% canary", status)
  return hs
end
if phase == "Pending" or phase == "Validating" then
  hs.status = "Progressing"
  hs.message = with_message(phase == "Pending" and "Pending" or ("Running the gates of " .. version), status)
  return hs
end
if phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = "Canary " .. version .. " at " .. (status.canaryWeight or 0) .. "%"
  return hs
end
if phase == "Promoted" then
  local degraded = condition(status, "Degraded")
  if degraded ~= nil and degraded.status == "True" then
    hs.status = "Degraded"
    hs.message = "Model degraded: " .. (degraded.message or degraded.reason or "")
    return hs
  end
  if degraded ~= nil and degraded.status == "Unknown" then
    hs.status = "Degraded"
    hs.message = "Model health unknown (" .. (degraded.reason or "Unknown") .. "): " .. (degraded.message or "")
    return hs
  end
  hs.status = "Healthy"
  hs.message = "Version " .. (status.stableVersion or version) .. " serves all traffic"
  return hs
end

hs.status = "Progressing"
hs.message = "Unknown phase " .. tostring(phase)
return hs
