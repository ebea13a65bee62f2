{{/* vemon.dashboardJson: a dashboard's JSON from files/ with the chart-wide refresh,
     time range and timezone from values put in place of its placeholders (each a
     JSON string literal, replaced by a JSON-encoded value; nothing else is parsed). */}}
{{- define "vemon.dashboardJson" -}}
{{- $v := .root.Values.dashboards -}}
{{- $text := .root.Files.Get (printf "files/dashboards/%s.json" .uid)
    | replace "\"@@VEMON_REFRESH@@\"" (toJson $v.refresh)
    | replace "\"@@VEMON_TIME_FROM@@\"" (toJson $v.timeFrom)
    | replace "\"@@VEMON_TIMEZONE@@\"" (toJson $v.timezone) -}}
{{- $off := include "vemon.dashboardLinksOff" . -}}
{{- if $off -}}
{{- /* links to dashboards turned off are dropped: the dashboard's links and its panels' data links */ -}}
{{- $re := printf "^/d/(%s)([?/#]|$)" $off -}}
{{- $d := fromJson $text -}}
{{- $keep := list -}}
{{- range $d.links }}{{ if not (regexMatch $re (toString .url)) }}{{ $keep = append $keep . }}{{ end }}{{ end -}}
{{- $_ := set $d "links" $keep -}}
{{- range $p := $d.panels -}}
{{- range $q := prepend ($p.panels | default list) $p -}}
{{- with $q.fieldConfig }}{{ with .defaults }}{{ with .links -}}
{{- $kept := list -}}
{{- range . }}{{ if not (regexMatch $re (toString .url)) }}{{ $kept = append $kept . }}{{ end }}{{ end -}}
{{- $_ := set $q.fieldConfig.defaults "links" $kept -}}
{{- end }}{{ end }}{{ end -}}
{{- end -}}
{{- end -}}
{{- toPrettyJson $d -}}
{{- else -}}
{{- $text -}}
{{- end -}}
{{- end }}

{{/* vemon.dashboardsOff: the uids of the dashboards turned off one by one ({uid: true}, JSON). */}}
{{- define "vemon.dashboardsOff" -}}
{{- $off := dict }}
{{- if .Values.dashboards.enabled }}
{{- range $uid, $cfg := .Values.dashboards.items }}{{ if not (dig "enabled" true ($cfg | default dict)) }}{{ $_ := set $off $uid true }}{{ end }}{{ end }}
{{- end }}
{{- $off | toJson }}
{{- end }}

{{/* vemon.dashboardLinksOff: "a|b" the dashboards turned off that dashboard .uid links to; "" when none. */}}
{{- define "vemon.dashboardLinksOff" -}}
{{- $off := include "vemon.dashboardsOff" .root | fromJson }}
{{- $found := list }}
{{- if $off }}
{{- $meta := .meta | default (get (.root.Files.Get "files/dashboards-index.json" | fromJson).dashboards .uid) }}
{{- range $meta.links }}{{ if hasKey $off . }}{{ $found = append $found . }}{{ end }}{{ end }}
{{- end }}
{{- join "|" $found }}
{{- end }}

{{/* vemon.dashboardName: the ConfigMap (and GrafanaDashboard) name of dashboard .uid. */}}
{{- define "vemon.dashboardName" -}}
{{- include "vemon.nameWith" (dict "full" (include "vemon.fullname" .root) "suffix" (printf "dashboard-%s" .uid)) }}
{{- end }}

{{/* vemon.dashboardFolder: the Grafana folder of dashboard .uid (values, else its template's). */}}
{{- define "vemon.dashboardFolder" -}}
{{- $cfg := get (.root.Values.dashboards.items | default dict) .uid | default dict -}}
{{- dig "folder" .meta.folder $cfg -}}
{{- end }}

{{/* vemon.folderSlug: a folder name as a path segment. */}}
{{- define "vemon.folderSlug" -}}
{{- regexReplaceAll "[^a-z0-9]+" (lower .) "-" | trimAll "-" -}}
{{- end }}
