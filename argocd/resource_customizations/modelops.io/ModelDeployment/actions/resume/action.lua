-- Argo CD action "resume": asks the operator to resume through the modelops.io/request annotation.
-- The id must be unique per request (the operator acts once per id): the time plus the object's
-- resourceVersion (which changes with every write, so two clicks in one second still differ).
local action = "resume"
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local id = "argocd-" .. action .. "-" .. os.time() .. "-" .. (obj.metadata.resourceVersion or "0")
obj.metadata.annotations["modelops.io/request"] =
  '{"id": "' .. id .. '", "action": "' .. action .. '", "team": "", "by": "argocd"}'
return obj
