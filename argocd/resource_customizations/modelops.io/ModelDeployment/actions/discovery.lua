-- Argo CD resource actions of a ModelDeployment. Each action writes a request to the annotation
-- modelops.io/request; the operator consumes it and records it in status.lastRequest. The spec is never
-- edited, so Argo CD shows no drift and a sync never undoes an action.
local actions = {}
local status = obj.status or {}
local phase = status.phase or "Pending"
local paused = status.paused == true or phase == "Paused"
local running = phase == "Validating" or phase == "Progressing" or phase == "Paused"

actions["promote"] = {["disabled"] = not (phase == "Progressing" or phase == "Paused"), ["iconClass"] = "fa fa-fw fa-forward"}
actions["abort"] = {["disabled"] = not running, ["iconClass"] = "fa fa-fw fa-times-circle"}
actions["pause"] = {["disabled"] = paused or not running, ["iconClass"] = "fa fa-fw fa-pause-circle"}
actions["resume"] = {["disabled"] = not paused, ["iconClass"] = "fa fa-fw fa-play-circle"}
actions["retry"] = {["disabled"] = not (phase == "Failed" or phase == "RolledBack"), ["iconClass"] = "fa fa-fw fa-redo"}
return actions
