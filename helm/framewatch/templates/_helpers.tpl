{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "framewatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name of every object. */}}
{{- define "framewatch.fullname" -}}
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

{{/* Labels on every object. */}}
{{- define "framewatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "framewatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: framewatch
{{- end }}

{{/* Labels that select this release's pods. */}}
{{- define "framewatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "framewatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one component; call with (dict "root" $ "component" "ingest"). */}}
{{- define "framewatch.componentLabels" -}}
{{ include "framewatch.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Selector labels of one component; call with (dict "root" $ "component" "ingest"). */}}
{{- define "framewatch.componentSelectorLabels" -}}
{{ include "framewatch.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Name of one component's objects. */}}
{{- define "framewatch.componentName" -}}
{{- printf "%s-%s" (include "framewatch.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "framewatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "framewatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "framewatch.configMapName" -}}
{{- default (printf "%s-config" (include "framewatch.fullname" .)) .Values.config.existingConfigMap }}
{{- end }}

{{/* The image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "framewatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Components this chart runs, in a fixed order: name -> framewatch subcommand arguments. */}}
{{- define "framewatch.components" -}}
ingest: [ingest, --sources, /etc/framewatch/sources.yaml]
processing: [process, --codebook, /etc/framewatch/codebook.yaml]
aggregate: [aggregate]
notify: [notify, --subscriptions, /etc/framewatch/subscriptions.yaml]
sink: [sink]
serve: [serve]
{{- end }}

{{/* The components' names in that order, as a list: range over (include "framewatch.componentNames" $ | fromJsonArray). */}}
{{- define "framewatch.componentNames" -}}
{{- toJson (list "ingest" "processing" "aggregate" "notify" "sink" "serve") }}
{{- end }}

{{/*
The pod template every component shares: security context, probes on the metrics port,
config and state volumes, Kafka and secret environment. Call with
(dict "root" $ "component" "ingest" "values" .Values.ingest "extraEnv" list); optional keys:
"extraVolumes"/"extraMounts" (lists) and "api" (a port the container also serves, named http).
*/}}
{{- define "framewatch.podTemplate" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- $args := index (include "framewatch.components" $root | fromYaml) .component }}
{{- $probe := dict "port" "metrics" "live" "/healthz" "ready" "/readyz" }}
metadata:
  labels:
    {{- include "framewatch.componentLabels" . | nindent 4 }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "framewatch.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds | default 30 }}
  containers:
    - name: {{ .component }}
      image: {{ include "framewatch.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml $args | nindent 8 }}
      ports:
        - name: metrics
          containerPort: {{ $root.Values.metrics.port }}
          protocol: TCP
        {{- with .api }}
        - name: http
          containerPort: {{ . }}
          protocol: TCP
        {{- end }}
      env:
        - name: FRAMEWATCH_KAFKA_BOOTSTRAP
          value: {{ $root.Values.kafka.bootstrapServers | quote }}
        - name: FRAMEWATCH_TOPIC_PREFIX
          value: {{ $root.Values.kafka.topicPrefix | quote }}
        - name: FRAMEWATCH_TOPIC_PARTITIONS
          value: {{ $root.Values.kafka.partitions | quote }}
        - name: FRAMEWATCH_TOPIC_REPLICATION
          value: {{ $root.Values.kafka.replicationFactor | quote }}
        - name: FRAMEWATCH_METRICS_PORT
          value: {{ $root.Values.metrics.port | quote }}
        - name: FRAMEWATCH_METRICS_HOST
          value: "0.0.0.0"
        - name: FRAMEWATCH_STATE_DIR
          value: /var/lib/framewatch
        - name: FRAMEWATCH_LOG_LEVEL
          value: {{ $root.Values.config.logLevel | quote }}
        - name: FRAMEWATCH_HEALTH_STALE_AFTER_S
          value: {{ $root.Values.config.healthStaleAfterSeconds | quote }}
        - name: HOME
          value: /var/lib/framewatch
        - name: HF_HOME
          value: /var/lib/framewatch/huggingface
        - name: HF_HUB_OFFLINE
          value: "1"
        {{- include "framewatch.kafkaEnv" $root | trim | nindent 8 }}
        {{- with $root.Values.secrets.existingSecret }}
        {{- range $env, $key := index $root.Values.secrets.keys $.component }}
        - name: {{ $env }}
          valueFrom:
            secretKeyRef:
              name: {{ $root.Values.secrets.existingSecret }}
              key: {{ $key }}
              optional: true
        {{- end }}
        {{- end }}
        {{- with .extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- with $root.Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        httpGet:
          path: {{ $probe.live }}
          port: {{ $probe.port }}
        initialDelaySeconds: {{ $v.probes.initialDelaySeconds }}
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: {{ $probe.ready }}
          port: {{ $probe.port }}
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      {{- if $v.probes.startupFailureThreshold }}
      startupProbe:
        httpGet:
          path: {{ $probe.live }}
          port: {{ $probe.port }}
        periodSeconds: 10
        failureThreshold: {{ $v.probes.startupFailureThreshold }}
      {{- end }}
      resources:
        {{- toYaml $v.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/framewatch
          readOnly: true
        - name: state
          mountPath: /var/lib/framewatch
        - name: tmp
          mountPath: /tmp
        {{- if include "framewatch.kafkaCaVolume" $root }}
        - name: kafka-ca
          mountPath: {{ include "framewatch.kafkaCaDir" $root }}
          readOnly: true
        {{- end }}
        {{- with .extraMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "framewatch.configMapName" $root }}
    {{- if not (and (eq .component "ingest") $v.persistence.enabled) }}
    - name: state
      emptyDir:
        sizeLimit: {{ $root.Values.stateVolume.sizeLimit }}
    {{- end }}
    - name: tmp
      emptyDir:
        sizeLimit: 256Mi
    {{- with include "framewatch.kafkaCaVolume" $root | trim }}
    - name: kafka-ca
      {{- . | nindent 6 }}
    {{- end }}
    {{- with .extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Processing's largest replica count must not exceed the topic partitions (idle consumers). */}}
{{- define "framewatch.processingMaxReplicas" -}}
{{- $max := int .Values.processing.autoscaling.maxReplicas }}
{{- $partitions := int .Values.kafka.partitions }}
{{- if gt $max $partitions }}
{{- fail (printf "processing.autoscaling.maxReplicas (%d) exceeds kafka.partitions (%d): consumers beyond the partition count sit idle" $max $partitions) }}
{{- end }}
{{- $max }}
{{- end }}
