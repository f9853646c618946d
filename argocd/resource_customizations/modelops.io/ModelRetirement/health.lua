-- Argo CD health of a modelops.io ModelRetirement. Argo CD runs this with the live object in `obj`.
-- Suspended: waiting for its date (nothing to do until then; an Application is not held "Progressing" for days).
-- Progressing: draining traffic or cleaning up. Healthy: retired. Degraded: blocked or invalid.
local hs = {}

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = status.phase
if phase == "Retired" then
  hs.status = "Healthy"
  hs.message = "Retired" .. (status.retiredAt and (" at " .. status.retiredAt) or "")
elseif phase == "Scheduled" then
  hs.status = "Suspended"
  hs.message = "Scheduled" .. (status.scheduledFor and (" for " .. status.scheduledFor) or "")
elseif phase == "Draining" then
  hs.status = "Progressing"
  hs.message = "Draining: " .. (status.drainedWeight or 0) .. "% moved to the replacement"
elseif phase == "CleaningUp" then
  hs.status = "Progressing"
  hs.message = "Cleaning up"
elseif phase == "Blocked" then
  hs.status = "Degraded"
  hs.message = "Blocked: " .. (status.blockedReason or status.message or "")
elseif phase == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = "Invalid spec: " .. (status.message or "")
else
  hs.status = "Progressing"
  hs.message = "Unknown phase " .. tostring(phase)
end
return hs
