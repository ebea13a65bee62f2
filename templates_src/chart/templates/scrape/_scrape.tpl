{{/* vemon.scrapeName: the object name of one scrape component: <fullname>-<component>; stable across versions and environments. */}}
{{- define "vemon.scrapeName" -}}
{{- include "vemon.nameWith" (dict "full" (include "vemon.fullname" .root) "suffix" (include "vemon.dnsName" .key)) }}
{{- end }}

{{/* vemon.scrapeMeta: metadata of a ServiceMonitor/PodMonitor (name, namespace, labels incl. scrape.labels for the operator's selector). */}}
{{- define "vemon.scrapeMeta" -}}
name: {{ include "vemon.scrapeName" . }}
namespace: {{ include "vemon.namespace" .root }}
labels:
  {{- include "vemon.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ include "vemon.dnsName" .key }}
  {{- with .root.Values.scrape.labels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/* vemon.scrapeSelectors: the selector and namespaceSelector of one component (scrape.namespaces, or the release namespace). */}}
{{- define "vemon.scrapeSelectors" -}}
selector:
  matchLabels:
    {{- toYaml .c.selector | nindent 4 }}
namespaceSelector:
  matchNames:
    {{- toYaml (default (list (include "vemon.namespace" .root)) .root.Values.scrape.namespaces) | nindent 4 }}
{{- end }}

{{/* vemon.scrapeEndpoint: one endpoint: port, path, params, interval, timeout; relabelling sets job and cluster on every series (up included), copies the pod labels named in podLabels to target labels (role: app.kubernetes.io/component) and sets chain_id where a series lacks it. */}}
{{- define "vemon.scrapeEndpoint" -}}
- port: {{ .c.port }}
  path: {{ .c.path }}
  {{- with .c.params }}
  params:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  interval: {{ .c.interval | default .root.Values.scrape.interval }}
  scrapeTimeout: {{ .c.scrapeTimeout | default .root.Values.scrape.scrapeTimeout }}
  relabelings:
    - action: replace
      targetLabel: job
      replacement: {{ .c.job | quote }}
    - action: replace
      targetLabel: cluster
      replacement: {{ include "vemon.cluster" .root | quote }}
  {{- range $target, $podLabel := .c.podLabels }}
    - action: replace
      sourceLabels: [{{ printf "__meta_kubernetes_pod_label_%s" (regexReplaceAll "[^A-Za-z0-9_]" $podLabel "_") }}]
      regex: "(.+)"
      targetLabel: {{ $target }}
      replacement: "$1"
  {{- end }}
  {{- with .root.Values.global.chainId }}
  metricRelabelings:
    - action: replace
      sourceLabels: [chain_id]
      regex: "^$"
      targetLabel: chain_id
      replacement: {{ . | quote }}
  {{- end }}
{{- end }}
