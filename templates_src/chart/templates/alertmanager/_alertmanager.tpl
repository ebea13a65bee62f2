{{/*
vemon.alertmanager.model: the routing policy of .Values.alertmanager as JSON,
shared by the Alertmanager configuration, the AlertmanagerConfig and the
Grafana provisioning so the three cannot disagree:
  root        {receiver, groupWait, groupInterval, repeatInterval}
  routes      [{key, matchers, receiver, groupWait, groupInterval, repeatInterval, teams: [{team, receiver}]}]
  receivers   [{name, kind (none|heartbeat|pagerduty|opsgenie), team, priority, secret {name, key}, opsgenieTeam}]
  inhibitions [{key, sourceMatchers, targetMatchers, equal}]
Routes are tried in ascending `order`; inside a route, the alert's `team`
label picks the receiver, an unknown or missing team gets defaultTeam's.
*/}}
{{- define "vemon.alertmanager.model" -}}
{{- $root := . }}
{{- $am := .Values.alertmanager }}
{{- include "vemon.alertmanager.checkSecrets" . }}
{{- if not (hasKey $am.teams $am.defaultTeam) }}
{{- fail (printf "alertmanager.defaultTeam: %q is not a key of alertmanager.teams (teams: %s)" $am.defaultTeam (keys $am.teams | sortAlpha | join ", ")) }}
{{- end }}
{{- $receivers := dict "null" (dict "name" "null" "kind" "none") }}
{{- $order := list }}
{{- range $key, $r := $am.routes }}
{{- if dig "enabled" true $r }}{{ $order = append $order (printf "%03d|%s" (int $r.order) $key) }}{{ end }}
{{- end }}
{{- $routes := list }}
{{- range $o := sortAlpha $order }}
{{- $key := index (splitList "|" $o) 1 }}
{{- $r := get $am.routes $key }}
{{- $matchers := concat (list) ($r.matchers | default list) }}
{{- if $r.ruleGroups }}
{{- $names := list }}
{{- range $g := $r.ruleGroups }}
{{- $file := $root.Files.Get (printf "files/rules/%s.json" $g) }}
{{- if not $file }}{{ fail (printf "alertmanager.routes.%s.ruleGroups: no rule group %q in this chart" $key $g) }}{{ end }}
{{- range ($file | fromJson).rules }}{{ if .alert }}{{ $names = append $names .alert }}{{ end }}{{ end }}
{{- end }}
{{- $matchers = append $matchers (printf "alertname=~%s" ($names | sortAlpha | join "|" | quote)) }}
{{- end }}
{{- if not $matchers }}{{ fail (printf "alertmanager.routes.%s: set matchers or ruleGroups (a route without them would take every alert)" $key) }}{{ end }}
{{- $route := dict "key" $key "matchers" $matchers "groupWait" ($r.groupWait | default "30s") "groupInterval" ($r.groupInterval | default "5m") "repeatInterval" ($r.repeatInterval | default "4h") "teams" (list) }}
{{- $notify := $r.notify }}
{{- if and (eq $notify "heartbeat") (not $am.heartbeat.enabled) }}{{ $notify = "none" }}{{ end }}
{{- $notify = include "vemon.alertmanager.vendor" (dict "am" $am "notify" $notify "matchers" $matchers) }}
{{- if eq $notify "none" }}
{{- $_ := set $route "receiver" "null" }}
{{- else if eq $notify "heartbeat" }}
{{- if not $am.heartbeat.url }}{{ fail "alertmanager.heartbeat.url: set the heartbeat endpoint (e.g. https://api.opsgenie.com/v2/heartbeats/<name>/ping) or set alertmanager.heartbeat.enabled=false" }}{{ end }}
{{- $_ := set $receivers "heartbeat" (dict "name" "heartbeat" "kind" "heartbeat") }}
{{- $_ := set $route "receiver" "heartbeat" }}
{{- else }}
{{- $teamRoutes := list }}
{{- range $team := keys $am.teams | sortAlpha }}
{{- $name := include "vemon.alertmanager.receiver" (dict "am" $am "kind" $notify "team" $team "priority" ($r.priority | default "P3") "receivers" $receivers) }}
{{- $teamRoutes = append $teamRoutes (dict "team" $team "receiver" $name) }}
{{- end }}
{{- $_ := set $route "teams" $teamRoutes }}
{{- $_ := set $route "receiver" (include "vemon.alertmanager.receiver" (dict "am" $am "kind" $notify "team" $am.defaultTeam "priority" ($r.priority | default "P3") "receivers" $receivers)) }}
{{- end }}
{{- $routes = append $routes $route }}
{{- end }}
{{- $fb := $am.fallback }}
{{- $rootReceiver := "null" }}
{{- $fbNotify := include "vemon.alertmanager.vendor" (dict "am" $am "notify" $fb.notify "matchers" list) }}
{{- if ne $fbNotify "none" }}
{{- $rootReceiver = include "vemon.alertmanager.receiver" (dict "am" $am "kind" $fbNotify "team" $am.defaultTeam "priority" ($fb.priority | default "P3") "receivers" $receivers) }}
{{- end }}
{{- $inhibitions := list }}
{{- range $key := keys $am.inhibitions | sortAlpha }}
{{- $i := get $am.inhibitions $key }}
{{- if dig "enabled" true $i }}
{{- $inhibitions = append $inhibitions (dict "key" $key "sourceMatchers" $i.sourceMatchers "targetMatchers" $i.targetMatchers "equal" $i.equal) }}
{{- end }}
{{- end }}
{{- $list := list }}
{{- range $name := keys $receivers | sortAlpha }}{{ $list = append $list (get $receivers $name) }}{{ end }}
{{- dict "root" (dict "receiver" $rootReceiver "groupWait" ($fb.groupWait | default "1m") "groupInterval" ($fb.groupInterval | default "10m") "repeatInterval" ($fb.repeatInterval | default "12h")) "routes" $routes "receivers" $list "inhibitions" $inhibitions | toJson }}
{{- end }}

{{/* vemon.alertmanager.vendor: where a route that notifies .notify delivers. A vendor turned off
     (alertmanager.<vendor>.enabled: false) hands its routes to the other vendor, unless that one is off
     too or the route is about the other vendor's failing notifications (integration="<other>"): nobody. */}}
{{- define "vemon.alertmanager.vendor" -}}
{{- $other := get (dict "pagerduty" "opsgenie" "opsgenie" "pagerduty") .notify }}
{{- if and $other (not (dig "enabled" true (get .am .notify))) }}
{{- if and (dig "enabled" true (get .am $other)) (not (has (printf "integration=%q" $other) .matchers)) }}
{{- $other }}
{{- else }}
{{- "none" }}
{{- end }}
{{- else }}
{{- .notify }}
{{- end }}
{{- end }}

{{/* vemon.alertmanager.receiver: adds the receiver for (kind, team, priority) to .receivers once; returns its name. */}}
{{- define "vemon.alertmanager.receiver" -}}
{{- $am := .am }}
{{- $team := get $am.teams .team }}
{{- if eq .kind "pagerduty" }}
{{- /* the team's own routing key: its name and key where set, the shared Secret's otherwise */}}
{{- $secret := pick $am.pagerduty.routingKeySecret "name" "key" }}
{{- with $team.pagerdutyRoutingKeySecret }}
{{- if .name }}{{ $_ := set $secret "name" .name }}{{ end }}
{{- if .key }}{{ $_ := set $secret "key" .key }}{{ end }}
{{- end }}
{{- $name := printf "pagerduty-%s" .team }}
{{- if not (hasKey .receivers $name) }}{{ $_ := set .receivers $name (dict "name" $name "kind" "pagerduty" "team" .team "secret" $secret) }}{{ end }}
{{- $name }}
{{- else }}
{{- $name := printf "opsgenie-%s-%s" .team (lower .priority) }}
{{- if not (hasKey .receivers $name) }}{{ $_ := set .receivers $name (dict "name" $name "kind" "opsgenie" "team" .team "priority" .priority "opsgenieTeam" $team.opsgenieTeam "secret" $am.opsgenie.apiKeySecret) }}{{ end }}
{{- $name }}
{{- end }}
{{- end }}

{{/* vemon.alertmanager.looksLikeKey: "true" when a string has the shape of a credential (a 32-character PagerDuty key, an Opsgenie UUID key, or a long run of mixed letters and digits). */}}
{{- define "vemon.alertmanager.looksLikeKey" -}}
{{- $s := toString . }}
{{- if or (regexMatch "^[0-9a-fA-F]{32}$" $s) (regexMatch "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$" $s) (and (regexMatch "^[A-Za-z0-9+/=_]{20,}$" $s) (regexMatch "[0-9]" $s) (regexMatch "[A-Za-z]" $s)) (regexMatch "[/=][0-9a-fA-F]{32}([/?&]|$)" $s) (regexMatch "[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}" $s) }}true{{ end }}
{{- end }}

{{/* vemon.alertmanager.checkSecrets: every credential is a Secret reference; a value shaped like a key fails with how to reference a Secret instead. */}}
{{- define "vemon.alertmanager.checkSecrets" -}}
{{- $am := .Values.alertmanager }}
{{- $refs := dict "alertmanager.pagerduty.routingKeySecret" $am.pagerduty.routingKeySecret "alertmanager.opsgenie.apiKeySecret" $am.opsgenie.apiKeySecret "alertmanager.heartbeat.authorizationSecret" $am.heartbeat.authorizationSecret }}
{{- range $team, $t := $am.teams }}{{ with $t.pagerdutyRoutingKeySecret }}{{ $_ := set $refs (printf "alertmanager.teams.%s.pagerdutyRoutingKeySecret" $team) . }}{{ end }}{{ end }}
{{- range $path := keys $refs | sortAlpha }}
{{- $ref := get $refs $path }}
{{- range $field := list "name" "key" }}
{{- $value := get $ref $field }}
{{- if include "vemon.alertmanager.looksLikeKey" $value }}
{{- fail (printf "%s.%s: %q looks like a credential, not the %s of a Secret. Keys never go into values: create a Secret (kubectl -n %s create secret generic virtengine-alerting --from-literal=<key-name>=<the key>), mount it into Alertmanager (kube-prometheus-stack: alertmanager.alertmanagerSpec.secrets: [virtengine-alerting]) and set %s to {name: virtengine-alerting, key: <key-name>}" $path $field (printf "%s..." (trunc 4 $value)) (ternary "name" "key name" (eq $field "name")) (include "vemon.namespace" $) $path) }}
{{- end }}
{{- end }}
{{- end }}
{{- if include "vemon.alertmanager.looksLikeKey" $am.heartbeat.url }}
{{- fail "alertmanager.heartbeat.url: the URL embeds what looks like a token. Keys never go into values: use a heartbeat endpoint that authenticates by header (e.g. https://api.opsgenie.com/v2/heartbeats/<name>/ping) and put the credential in a Secret named by alertmanager.heartbeat.authorizationSecret {name, key}" }}
{{- end }}
{{- end }}

{{/* vemon.alertmanager.secretFile: the path where Alertmanager reads a Secret's key. Args: mount, ref, path. */}}
{{- define "vemon.alertmanager.secretFile" -}}
{{- if or (not .ref.name) (not .ref.key) }}
{{- fail (printf "%s: name the Secret and key that hold this credential ({name: <secret>, key: <key>}); the Secret must be mounted into Alertmanager" .path) }}
{{- end }}
{{- printf "%s/%s/%s" (trimSuffix "/" .mount) .ref.name .ref.key }}
{{- end }}

{{/* vemon.alertmanager.matcher: a matcher string (name="value", name=~"regex", ...) as {name, op, value}. */}}
{{- define "vemon.alertmanager.matcher" -}}
{{- $name := regexFind "^[a-zA-Z_][a-zA-Z0-9_]*" . }}
{{- $rest := trimPrefix $name . }}
{{- $op := regexFind "^(=~|!~|!=|=)" $rest }}
{{- $value := trimPrefix $op $rest | trimPrefix "\"" | trimSuffix "\"" }}
{{- dict "name" $name "op" $op "value" $value | toJson }}
{{- end }}

{{/* vemon.alertmanager.crMatcher: a parsed matcher as an AlertmanagerConfig matcher (matchType left out for "=", its default). */}}
{{- define "vemon.alertmanager.crMatcher" -}}
{{- $m := dict "name" .name "value" .value }}
{{- if ne .op "=" }}{{ $_ := set $m "matchType" .op }}{{ end }}
{{- $m | toJson }}
{{- end }}
