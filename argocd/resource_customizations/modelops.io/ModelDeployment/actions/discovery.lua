-- Argo CD resource actions of a ModelDeployment (Argo CD >= 2.8). Each action creates a ModelRequest owned by the
-- ModelDeployment; the operator carries it out once and answers in its status (Applied or Refused). The
-- ModelDeployment is never edited, so Argo CD shows no drift and a sync never undoes an action. There is no approve
-- action: an approval must carry the approver's own authenticated name, and Argo CD creates with its own credentials.
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
