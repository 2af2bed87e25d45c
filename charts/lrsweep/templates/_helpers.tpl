{{/*
The chart's name, or nameOverride.
*/}}
{{- define "lrsweep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A fully qualified name for the release's objects, at most 63 characters (DNS label limit).
If the release name already contains the chart name, it is not repeated.
*/}}
{{- define "lrsweep.fullname" -}}
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

{{/*
Chart name and version, as the helm.sh/chart label.
*/}}
{{- define "lrsweep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "lrsweep.labels" -}}
helm.sh/chart: {{ include "lrsweep.chart" . }}
{{ include "lrsweep.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lrsweep
{{- end }}

{{/*
Labels that select the operator's pod (immutable in a Deployment: keep them stable).
*/}}
{{- define "lrsweep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lrsweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
The operator's ServiceAccount.
*/}}
{{- define "lrsweep.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lrsweep.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The namespaces whose LRSweeps the operator watches when not cluster-wide: the listed ones,
or the release's own.
*/}}
{{- define "lrsweep.watchNamespaces" -}}
{{- if .Values.operator.watchNamespaces }}
{{- join "," (uniq .Values.operator.watchNamespaces) }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}

{{/*
The operator image reference: the tag defaults to the chart's appVersion.
*/}}
{{- define "lrsweep.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The RBAC rules the operator needs on the namespaced objects it handles. No wildcards and
no secrets: the same list backs the per-namespace Roles and the cluster-wide ClusterRole.
*/}}
{{- define "lrsweep.operatorRules" -}}
# The sweeps: kopf watches them and patches its annotations and finalizer.
- apiGroups: [lrsweep.dev]
  resources: [lrsweeps]
  verbs: [get, list, watch, patch, update]
# Status is written through the status subresource.
- apiGroups: [lrsweep.dev]
  resources: [lrsweeps/status]
  verbs: [get, patch, update]
# Trial pods are owned by their sweep with blockOwnerDeletion; clusters running the
# OwnerReferencesPermissionEnforcement admission plugin require this to set it.
- apiGroups: [lrsweep.dev]
  resources: [lrsweeps/finalizers]
  verbs: [update]
# One pod per trial attempt: launched, observed, stopped.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
# The winner, when a sweep's spec.output.configMap asks for it.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, update]
# Events on the sweeps (TrialStarted, TrialStopped, BestRateFound, ...).
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/*
The full name with a component suffix, still at most 63 characters (a Service name must be a
DNS label). Called as (include "lrsweep.componentName" (list . "metrics")).
*/}}
{{- define "lrsweep.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $max := int (sub 62 (len $suffix)) }}
{{- printf "%s-%s" (include "lrsweep.fullname" $root | trunc $max | trimSuffix "-") $suffix }}
{{- end }}
