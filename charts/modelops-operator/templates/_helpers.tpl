{{/* The chart's name, truncated to the 63 characters a label value allows. */}}
{{- define "modelops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: objects are named after it. */}}
{{- define "modelops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "modelops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "modelops.labels" -}}
helm.sh/chart: {{ include "modelops.chart" . }}
{{ include "modelops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelops
{{- end }}

{{- define "modelops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "modelops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "modelops.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Peering is on when asked for, and always with more than one replica (two standalone operators would fight). */}}
{{- define "modelops.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/*
RBAC rules for what the operator handles inside a namespace. The cluster-wide install puts them in the
ClusterRole; the namespaced install in a Role per watched namespace. Least privilege: exactly the
(group, resource, verb) triples the operator uses (tests/packaging checks them against the API request log).
*/}}
{{- define "modelops.namespacedRules" -}}
- apiGroups: [modelops.io]
  resources: [modeldeployments]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [modelops.io]
  resources: [modelretirements]
  verbs: [get, list, watch, patch]
- apiGroups: [modelops.io]
  resources: [modelrequests]
  verbs: [list, watch]
- apiGroups: [modelops.io]
  resources: [modeldeployments/status, modelretirements/status, modelrequests/status]
  verbs: [patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [events]
  verbs: [get, create, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, patch]
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, patch]
- apiGroups: [networking.istio.io]
  resources: [destinationrules]
  verbs: [get, create, patch]
{{- end }}

{{/* kopf reads CRDs to find the resources it serves: cluster-scoped in both install modes. */}}
{{- define "modelops.crdRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}
