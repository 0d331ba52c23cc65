{{/* The release's name prefix: the release name, with the chart's name when it lacks it. */}}
{{- define "pulsarjobs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "worker-default"). */}}
{{- define "pulsarjobs.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "pulsarjobs.labels" -}}
{{ include "pulsarjobs.selectorLabels" . }}
{{- with .root.Values.image.tag }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* What must be given: rendering stops with a line saying what to set. */}}
{{- define "pulsarjobs.app" -}}
{{- required "set app to your App as module:attribute (e.g. --set app=myproject.jobs:app): the worker, scheduler and dashboard load it" .Values.app -}}
{{- end -}}

{{- define "pulsarjobs.image" -}}
{{- $repository := required "set image.repository to your image: your code with pulsarjobs installed" .Values.image.repository -}}
{{- if .Values.image.tag -}}
{{- printf "%s:%s" $repository .Values.image.tag -}}
{{- else -}}
{{- $repository -}}
{{- end -}}
{{- end -}}

{{- define "pulsarjobs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "pulsarjobs.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* A worker group with workerDefaults under it: (dict "root" $ "group" .). */}}
{{- define "pulsarjobs.group" -}}
{{- $group := mergeOverwrite (deepCopy .root.Values.workerDefaults) .group -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString $group.name)) -}}
{{- fail (printf "workers: name %q must be lower-case letters, digits and '-' (it names the group's Deployment)" (toString $group.name)) -}}
{{- end -}}
{{- if not $group.queues -}}
{{- fail (printf "workers: group %q needs queues (as --queues takes them: critical,default,low)" $group.name) -}}
{{- end -}}
{{- if not (has $group.autoscaling.trigger (list "ready" "backlog")) -}}
{{- fail (printf "workers: group %q: autoscaling.trigger must be ready or backlog, not %q" $group.name $group.autoscaling.trigger) -}}
{{- end -}}
{{- if and $group.autoscaling.enabled (eq $group.autoscaling.trigger "ready") (not .root.Values.dashboard.enabled) -}}
{{- fail (printf "workers: group %q scales on ready jobs, which the dashboard serves: enable the dashboard or use autoscaling.trigger=backlog" $group.name) -}}
{{- end -}}
{{- toYaml $group -}}
{{- end -}}

{{/* A group's queue names, without weights: "critical:6,default:3" -> [critical, default]. */}}
{{- define "pulsarjobs.queueNames" -}}
{{- $names := list -}}
{{- range splitList "," (toString .) -}}
{{- $names = append $names (splitList ":" . | first | trim) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The broker's settings, then the extra env: the container's `env` items. */}}
{{- define "pulsarjobs.env" -}}
{{- $broker := .root.Values.broker -}}
- name: PULSARJOBS_SERVICE_URL
  value: {{ $broker.serviceUrl | quote }}
- name: PULSARJOBS_ADMIN_URL
  value: {{ $broker.adminUrl | quote }}
- name: PULSARJOBS_TENANT
  value: {{ $broker.tenant | quote }}
- name: PULSARJOBS_NAMESPACE
  value: {{ $broker.namespace | quote }}
- name: PULSARJOBS_SUBSCRIPTION
  value: {{ $broker.subscription | quote }}
{{- with $broker.auth.existingSecret }}
- name: PULSARJOBS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $broker.auth.key }}
{{- end }}
{{- if $broker.tls.existingSecret }}
- name: PULSARJOBS_TLS_TRUST_FILE
  value: /etc/pulsarjobs/tls/ca.pem
{{- end }}
{{- with .root.Values.env }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The pod spec's lines every component shares (its volumes included). */}}
{{- define "pulsarjobs.podSpec" -}}
serviceAccountName: {{ include "pulsarjobs.serviceAccountName" . }}
automountServiceAccountToken: false  # no process of pulsarjobs talks to Kubernetes
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp  # the root filesystem is read-only; worker groups keep their metrics here
    emptyDir: {}
  {{- with .Values.broker.tls.existingSecret }}
  - name: broker-ca
    secret:
      secretName: {{ . }}
      items:  # the CA alone, whatever else the Secret holds
        - key: {{ $.Values.broker.tls.key }}
          path: ca.pem
      defaultMode: 0444
  {{- end }}
{{- end -}}

{{/* The container's lines every component shares. */}}
{{- define "pulsarjobs.container" -}}
image: {{ include "pulsarjobs.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if .Values.broker.tls.existingSecret }}
  - name: broker-ca
    mountPath: /etc/pulsarjobs/tls
    readOnly: true
  {{- end }}
{{- end -}}

{{/* Kubernetes' probes on a named port: /livez restarts a wedged process, /readyz gates. */}}
{{- define "pulsarjobs.probes" -}}
livenessProbe:
  httpGet:
    path: /livez
    port: {{ . }}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: {{ . }}
  periodSeconds: 5
  timeoutSeconds: 5
  failureThreshold: 2
{{- end -}}

{{- define "pulsarjobs.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ . | quote }}
prometheus.io/path: /metrics
{{- end -}}
