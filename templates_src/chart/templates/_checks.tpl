{{/* vemon.checkSecrets: no key-shaped string in any string value (generator/secrets.py, files/checks/secrets.json):
     each "<key>: <value>" is searched as the generator searches each line of a values file; the message
     names the key and the kind, never the value. */}}
{{- define "vemon.checkSecrets" -}}
{{- $spec := .Files.Get "files/checks/secrets.json" | fromJson }}
{{- include "vemon.scanValue" (dict "v" .Values "path" "" "key" "" "spec" $spec) }}
{{- end }}

{{/* vemon.scanValue: args v (a value), path (its dotted key), key (its last key), spec. */}}
{{- define "vemon.scanValue" -}}
{{- $args := . }}
{{- if kindIs "map" .v }}
{{- range $k, $x := .v }}
{{- include "vemon.scanValue" (dict "v" $x "path" (ternary $k (printf "%s.%s" $args.path $k) (eq $args.path "")) "key" $k "spec" $args.spec) }}
{{- end }}
{{- else if kindIs "slice" .v }}
{{- range $i, $x := .v }}
{{- include "vemon.scanValue" (dict "v" $x "path" (printf "%s.%d" $args.path $i) "key" (toString $i) "spec" $args.spec) }}
{{- end }}
{{- else if and (typeIs "string" .v) .v }}
{{- $spec := .spec }}
{{- $line := printf "%s: %s" .key .v }}
{{- if not (contains $spec.allowMark $line) }}
{{- $found := "" }}
{{- range $p := $spec.patterns }}
{{- if not $found }}
{{- if $p.regex }}
{{- $m := regexFind $p.regex $line }}
{{- if and $m (or (not $p.skip) (not (regexMatch $p.skip $m))) }}{{ $found = $p.kind }}{{ end }}
{{- else }}
{{- range $piece := regexSplit $p.split $line -1 }}
{{- if and (not $found) (regexMatch $p.full $piece) }}
{{- $ok := true }}
{{- range $need := $p.needs | default list }}{{ if not (regexMatch $need $piece) }}{{ $ok = false }}{{ end }}{{ end }}
{{- if $ok }}{{ $found = $p.kind }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $literal := trimAll "\"'" (trim .v) }}
{{- if and (not $found) (regexMatch $spec.alwaysSecretKey .key) $literal (not (has $literal (list "null" "~" "{}" "[]"))) (not (regexMatch $spec.notAValue $literal)) }}
{{- $found = printf "a literal value under %q" .key }}
{{- end }}
{{- if $found }}
{{- fail (printf "%s: key-shaped string: %s (%d characters, value masked); %s" .path $found (len .v) $spec.message) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* vemon.durationMs: a duration of the form <n>(ms|s|m|h) in milliseconds. */}}
{{- define "vemon.durationMs" -}}
{{- $n := regexFind "^[0-9]+" . | int64 }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" .) . }}
{{- mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit) }}
{{- end }}

{{/* vemon.checkScrape: timeouts within their intervals, one job name per component, and every job an alert
     selects scraped by some component (generator/content/scrape.py check and check_rule_jobs). */}}
{{- define "vemon.checkScrape" -}}
{{- $s := .Values.scrape }}
{{- $jobs := dict }}
{{- range $key, $c := $s.components }}{{ $_ := set $jobs (toString $c.job) true }}{{ end }}
{{- if $s.enabled }}
{{- $seen := dict }}
{{- range $key, $c := $s.components }}
{{- if $c.enabled }}
{{- $interval := $c.interval | default $s.interval }}
{{- $timeout := $c.scrapeTimeout | default $s.scrapeTimeout }}
{{- if gt (include "vemon.durationMs" $timeout | int64) (include "vemon.durationMs" $interval | int64) }}
{{- fail (printf "%s: scrape timeout %s is longer than the interval %s (%s) of component %s; set it at most the interval" (ternary (printf "scrape.components.%s.scrapeTimeout" $key) "scrape.scrapeTimeout" (not (empty $c.scrapeTimeout))) $timeout $interval (ternary (printf "scrape.components.%s.interval" $key) "scrape.interval" (not (empty $c.interval))) $key) }}
{{- end }}
{{- with get $seen $c.job }}
{{- fail (printf "scrape.components.%s.job: two scrape components share the job name %q (also %s); give each its own" $key $c.job .) }}
{{- end }}
{{- $_ := set $seen $c.job $key }}
{{- end }}
{{- end }}
{{- end }}
{{- $selected := .Files.Get "files/checks/rule-jobs.json" | fromJson }}
{{- range $job := keys $selected | sortAlpha }}
{{- if not (hasKey $jobs $job) }}
{{- fail (printf "scrape.components: alerts %s select job=%q but no scrape component has that job name (jobs: %s); they could never fire. Keep the job name" (get $selected $job | join ", ") $job (keys $jobs | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- end }}

{{/* vemon.checkDatasources: one default datasource, distinct uids, none taking kube-prometheus-stack's
     (generator/content/datasources.py check). */}}
{{- define "vemon.checkDatasources" -}}
{{- $ds := .Values.datasources }}
{{- if $ds.enabled }}
{{- $c := .Files.Get "files/checks/datasources.json" | fromJson }}
{{- $items := dict }}
{{- range $key, $item := $ds.items }}
{{- if and (dig "enabled" true $item) (not (and $ds.reuseStackPrometheus (eq $item.type "prometheus"))) }}{{ $_ := set $items $key $item }}{{ end }}
{{- end }}
{{- $defaults := list }}
{{- range $key := keys $items | sortAlpha }}{{ if (get $items $key).isDefault }}{{ $defaults = append $defaults $key }}{{ end }}{{ end }}
{{- if $ds.reuseStackPrometheus }}
{{- with $defaults }}
{{- fail (printf "datasources.items.%s.isDefault: with reuseStackPrometheus the stack's Prometheus datasource is the default; %s must not be" (first .) (join ", " .)) }}
{{- end }}
{{- range $key := keys $items | sortAlpha }}
{{- $item := get $items $key }}
{{- if or (hasKey $c.stack (toString $item.uid)) (has $item.name (values $c.stack)) }}
{{- fail (printf "datasources.items.%s: uid %q / name %q is kube-prometheus-stack's; choose another" $key $item.uid $item.name) }}
{{- end }}
{{- end }}
{{- else if ne (len $defaults) 1 }}
{{- fail (printf "datasources.items.*.isDefault: exactly one enabled datasource must be the default, found %d (%s)" (len $defaults) (join ", " $defaults | default "none")) }}
{{- end }}
{{- $uids := dict }}
{{- range $key := keys $items | sortAlpha }}
{{- $uid := toString (get $items $key).uid }}
{{- with get $uids $uid }}{{ fail (printf "datasources.items.%s.uid: uid %q is used by %s and %s" $key $uid . $key) }}{{ end }}
{{- $_ := set $uids $uid $key }}
{{- end }}
{{- if not $ds.reuseStackPrometheus }}
{{- $default := get $uids $c.dashboardDefaultUid }}
{{- if or (not $default) (ne (get $items $default).type "prometheus") }}
{{- fail (printf "datasources.items: the dashboards read a Prometheus datasource with uid %q; keep it enabled" $c.dashboardDefaultUid) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* vemon.checkRouting: a failing vendor's alerts never routed to that vendor; alert names in routes and
     inhibitions exist (generator/content/routing.py check_failover and check_values). */}}
{{- define "vemon.checkRouting" -}}
{{- $am := .Values.alertmanager }}
{{- if $am.enabled }}
{{- $known := (.Files.Get "files/rules-index.json" | fromJson).alerts }}
{{- $external := (.Files.Get "files/checks/routing.json" | fromJson).externalAlerts }}
{{- range $key := keys $am.routes | sortAlpha }}
{{- $r := get $am.routes $key }}
{{- if dig "enabled" true $r }}
{{- range $m := $r.matchers | default list }}
{{- $vendor := regexFind "^integration=\"(pagerduty|opsgenie)\"$" $m | trimPrefix "integration=\"" | trimSuffix "\"" }}
{{- if and $vendor (eq $r.notify $vendor) }}
{{- fail (printf "alertmanager.routes.%s.notify: routes the alerts about failing %s notifications to %s itself, which cannot deliver them; notify the other vendor (or none)" $key $vendor $vendor) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $m := $r.matchers | default list }}
{{- include "vemon.checkAlertNames" (dict "m" $m "known" $known "external" $external "path" (printf "alertmanager.routes.%s.matchers" $key)) }}
{{- end }}
{{- end }}
{{- range $key := keys $am.inhibitions | sortAlpha }}
{{- $i := get $am.inhibitions $key }}
{{- range $side := list "sourceMatchers" "targetMatchers" }}
{{- range $m := get $i $side | default list }}
{{- include "vemon.checkAlertNames" (dict "m" $m "known" $known "external" $external "path" (printf "alertmanager.inhibitions.%s.%s" $key $side)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* vemon.checkAlertNames: the alert names a matcher names literally (alertname="X", alertname=~"A|B") exist. */}}
{{- define "vemon.checkAlertNames" -}}
{{- $args := . }}
{{- if regexMatch "^alertname(=~|=)\".*\"$" .m }}
{{- $regex := hasPrefix "alertname=~" .m }}
{{- $value := .m | trimPrefix "alertname=~" | trimPrefix "alertname=" | trimPrefix "\"" | trimSuffix "\"" }}
{{- $names := ternary (splitList "|" $value) (list $value) $regex }}
{{- range $name := $names }}
{{- if or (not $regex) (regexMatch "^[A-Za-z0-9]+$" $name) }}
{{- if not (or (hasKey $args.known $name) (has $name $args.external)) }}
{{- fail (printf "%s: no alert named %q (in %s); a renamed or removed alert?" $args.path $name $args.m) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
