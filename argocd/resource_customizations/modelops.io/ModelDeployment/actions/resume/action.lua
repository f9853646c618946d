-- Argo CD action "resume": asks the operator to resume by creating a ModelRequest (modelops.io/v1alpha1) in the
-- ModelDeployment's namespace, owned by the ModelDeployment (the garbage collector deletes it with it, and Argo CD
-- shows it under the ModelDeployment without counting it as drift). The ModelDeployment itself is not changed.
-- The name must be new for each request: the ModelDeployment's name, the action, the time and the resourceVersion,
-- which the operator's answer to the previous request changes (two clicks in one second before that answer make the
-- same name, and Argo CD reports the second as AlreadyExists: one request, not two).
-- spec.requestedBy stays unset: Argo CD creates the object with its own credentials, and the chart's admission policy
-- refuses a requestedBy other than the creator's authenticated name. Argo CD opens no string library, so a name that
-- would be too long cannot be cut; it drops the ModelDeployment's name instead (such a name, over 63 characters, is
-- refused in spec.modelDeployment anyway).
local action = "resume"
local rv = obj.metadata.resourceVersion
if rv == nil or tonumber(rv) == nil then
  rv = "0"
end
local suffix = action .. "-" .. os.time() .. "-" .. rv
local name = obj.metadata.name .. "-" .. suffix
if #name > 253 then
  name = suffix
end
local request = {
  apiVersion = "modelops.io/v1alpha1",
  kind = "ModelRequest",
  metadata = {
    name = name,
    namespace = obj.metadata.namespace,
    ownerReferences = {
      {apiVersion = obj.apiVersion, kind = obj.kind, name = obj.metadata.name, uid = obj.metadata.uid},
    },
  },
  spec = {modelDeployment = obj.metadata.name, action = action, reason = "Argo CD action " .. action},
}
return {{operation = "create", resource = request}}
