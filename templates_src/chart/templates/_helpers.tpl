{{/* vemon.name: the chart name, overridable with nameOverride. */}}
{{- define "vemon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* vemon.fullname: release-qualified name, at most 63 characters. */}}
{{- define "vemon.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "vemon.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "vemon.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* vemon.chart: chart name and version for the helm.sh/chart label. */}}
{{- define "vemon.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* vemon.cluster: the monitored cluster's name; installing without it fails by name. */}}
{{- define "vemon.cluster" -}}
{{- required "global.cluster is required: set it in your environment values file (values/<env>.yaml) or with --set global.cluster=<name>" .Values.global.cluster }}
{{- end }}

{{/* vemon.labels: the standard labels of every object. */}}
{{- define "vemon.labels" -}}
helm.sh/chart: {{ include "vemon.chart" . }}
{{ include "vemon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: virtengine-observability
virtengine.io/environment: {{ include "vemon.environment" . | quote }}
{{- with .Values.global.labels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* vemon.selectorLabels: labels that identify this release's objects. */}}
{{- define "vemon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vemon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* vemon.dnsName: a group or uid turned into a DNS-1123 name fragment. */}}
{{- define "vemon.dnsName" -}}
{{- . | lower | replace "_" "-" | replace "." "-" | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* vemon.namespace: the namespace of every object: namespaceOverride, else the release's. */}}
{{- define "vemon.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/* vemon.nameWith: .full-.suffix, an object name within 63 characters whatever the release name: when too
     long, .full is cut and a short hash of the whole name keeps names of different releases apart. */}}
{{- define "vemon.nameWith" -}}
{{- $name := printf "%s-%s" .full .suffix }}
{{- if le (len $name) 63 }}
{{- $name }}
{{- else }}
{{- $hash := sha256sum $name | trunc 6 }}
{{- $keep := sub 63 (add (len .suffix) 8) | int }}
{{- if ge $keep 1 }}
{{- printf "%s-%s-%s" (trunc $keep .full | trimSuffix "-" | trimSuffix "-") $hash .suffix }}
{{- else }}
{{- printf "%s-%s" (trunc 56 $name | trimSuffix "-" | trimSuffix "-") $hash }}
{{- end }}
{{- end }}
{{- end }}

{{/* vemon.objectName: <fullname>-<.suffix> within 63 characters (vemon.nameWith). */}}
{{- define "vemon.objectName" -}}
{{- include "vemon.nameWith" (dict "full" (include "vemon.fullname" .root) "suffix" .suffix) }}
{{- end }}

{{/* vemon.environment: global.environment; installing without it fails by name. */}}
{{- define "vemon.environment" -}}
{{- required "global.environment is required: set it in your environment values file (values/<env>.yaml) or with --set global.environment=<name> (lowercase letters, digits and '-'); it becomes the environment label of every alert" .Values.global.environment }}
{{- end }}
