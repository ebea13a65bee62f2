{{/* vemon.dashboardJson: a dashboard's JSON from files/ with the chart-wide refresh,
     time range and timezone from values put in place of its placeholders (each a
     JSON string literal, replaced by a JSON-encoded value; nothing else is parsed). */}}
{{- define "vemon.dashboardJson" -}}
{{- $v := .root.Values.dashboards -}}
{{- .root.Files.Get (printf "files/dashboards/%s.json" .uid)
    | replace "\"@@VEMON_REFRESH@@\"" (toJson $v.refresh)
    | replace "\"@@VEMON_TIME_FROM@@\"" (toJson $v.timeFrom)
    | replace "\"@@VEMON_TIMEZONE@@\"" (toJson $v.timezone) -}}
{{- end }}

{{/* vemon.dashboardName: the ConfigMap (and GrafanaDashboard) name of dashboard .uid. */}}
{{- define "vemon.dashboardName" -}}
{{- include "vemon.nameWith" (dict "full" (include "vemon.fullname" .root) "suffix" (printf "dashboard-%s" .uid)) }}
{{- end }}

{{/* vemon.dashboardFolder: the Grafana folder of dashboard .uid (values, else its template's). */}}
{{- define "vemon.dashboardFolder" -}}
{{- $cfg := get .root.Values.dashboards.items .uid | default dict -}}
{{- dig "folder" .meta.folder $cfg -}}
{{- end }}

{{/* vemon.folderSlug: a folder name as a path segment. */}}
{{- define "vemon.folderSlug" -}}
{{- regexReplaceAll "[^a-z0-9]+" (lower .) "-" | trimAll "-" -}}
{{- end }}
