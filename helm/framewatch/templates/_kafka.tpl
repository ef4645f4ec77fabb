{{/*
How every component connects to Kafka: protocol, SASL login from a Secret, and the brokers' CA
mounted as a file. The env names are framewatch/settings.py's (FRAMEWATCH_KAFKA_*).
*/}}

{{/* Name of the Strimzi KafkaUser (and of the Secret Strimzi writes for it). */}}
{{- define "framewatch.kafkaUserName" -}}
{{- default (include "framewatch.fullname" .) .Values.kafka.strimzi.user.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Secret with the SASL credentials: kafka.sasl.existingSecret, else the KafkaUser's; empty when none. */}}
{{- define "framewatch.kafkaSaslSecret" -}}
{{- if .Values.kafka.sasl.existingSecret }}
{{- .Values.kafka.sasl.existingSecret }}
{{- else if .Values.kafka.strimzi.user.enabled }}
{{- include "framewatch.kafkaUserName" . }}
{{- end }}
{{- end }}

{{/* Refuse values that would start pods unable to log in, or that silently do nothing. */}}
{{- define "framewatch.kafkaCheck" -}}
{{- $k := .Values.kafka }}
{{- $sasl := hasPrefix "SASL_" $k.securityProtocol }}
{{- $tls := has $k.securityProtocol (list "SSL" "SASL_SSL") }}
{{- if and $sasl (not (include "framewatch.kafkaSaslSecret" .)) }}
{{- fail (printf "kafka.securityProtocol=%s needs the Kafka credentials from a Secret: set kafka.sasl.existingSecret (keys kafka.sasl.usernameKey and kafka.sasl.passwordKey) or kafka.strimzi.user.enabled" $k.securityProtocol) }}
{{- end }}
{{- if and $k.tls.caSecret $k.tls.caConfigMap }}
{{- fail "kafka.tls.caSecret and kafka.tls.caConfigMap are both set: the CA comes from one of them" }}
{{- end }}
{{- if and (or $k.tls.caSecret $k.tls.caConfigMap) (not $tls) }}
{{- fail (printf "kafka.tls.caSecret/caConfigMap is set but kafka.securityProtocol=%s does not use TLS (use SSL or SASL_SSL)" $k.securityProtocol) }}
{{- end }}
{{- if $k.strimzi.user.enabled }}
{{- if not $k.strimzi.enabled }}
{{- fail "kafka.strimzi.user.enabled needs kafka.strimzi.enabled (a Strimzi-managed cluster)" }}
{{- end }}
{{- if not $sasl }}
{{- fail (printf "kafka.strimzi.user.enabled needs kafka.securityProtocol SASL_SSL or SASL_PLAINTEXT, not %s" $k.securityProtocol) }}
{{- end }}
{{- if ne $k.sasl.mechanism "SCRAM-SHA-512" }}
{{- fail (printf "kafka.strimzi.user.enabled makes a SCRAM-SHA-512 user, but kafka.sasl.mechanism is %s" $k.sasl.mechanism) }}
{{- end }}
{{- if not $k.topicPrefix }}
{{- fail "kafka.strimzi.user.enabled needs a kafka.topicPrefix: the user's ACLs cover the topics and consumer groups by that prefix" }}
{{- end }}
{{- $userNs := default .Release.Namespace $k.strimzi.namespace }}
{{- if and (not $k.sasl.existingSecret) (ne $userNs .Release.Namespace) }}
{{- fail (printf "kafka.strimzi.user.enabled: Strimzi writes the user's Secret in namespace %s, which pods in %s cannot read; copy it here and set kafka.sasl.existingSecret" $userNs .Release.Namespace) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Folder the brokers' CA is mounted at. */}}
{{- define "framewatch.kafkaCaDir" -}}
/etc/framewatch-kafka-ca
{{- end }}

{{/* The kafka-ca volume source (secret or configMap), empty when no CA is configured. */}}
{{- define "framewatch.kafkaCaVolume" -}}
{{- $tls := .Values.kafka.tls }}
{{- if $tls.caSecret }}
secret:
  secretName: {{ $tls.caSecret }}
  defaultMode: 0444
  items:
    - key: {{ $tls.caKey }}
      path: ca.crt
{{- else if $tls.caConfigMap }}
configMap:
  name: {{ $tls.caConfigMap }}
  defaultMode: 0444
  items:
    - key: {{ $tls.caKey }}
      path: ca.crt
{{- end }}
{{- end }}

{{/* FRAMEWATCH_KAFKA_* connection env of every component (an EnvVar list). */}}
{{- define "framewatch.kafkaEnv" -}}
{{- include "framewatch.kafkaCheck" . }}
{{- $k := .Values.kafka }}
- name: FRAMEWATCH_KAFKA_SECURITY_PROTOCOL
  value: {{ $k.securityProtocol | quote }}
{{- if hasPrefix "SASL_" $k.securityProtocol }}
{{- $secret := include "framewatch.kafkaSaslSecret" . }}
- name: FRAMEWATCH_KAFKA_SASL_MECHANISM
  value: {{ $k.sasl.mechanism | quote }}
- name: FRAMEWATCH_KAFKA_SASL_USERNAME
{{- if $k.sasl.username }}
  value: {{ $k.sasl.username | quote }}
{{- else if $k.strimzi.user.enabled }}
  value: {{ include "framewatch.kafkaUserName" . | quote }}
{{- else }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.sasl.usernameKey }}
{{- end }}
- name: FRAMEWATCH_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $k.sasl.passwordKey }}
{{- end }}
{{- if include "framewatch.kafkaCaVolume" . }}
- name: FRAMEWATCH_KAFKA_SSL_CAFILE
  value: {{ printf "%s/ca.crt" (include "framewatch.kafkaCaDir" .) | quote }}
{{- end }}
{{- end }}
