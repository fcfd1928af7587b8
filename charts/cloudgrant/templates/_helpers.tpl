{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "cloudgrant.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix: <release>-cloudgrant, or the release name when it already says so. */}}
{{- define "cloudgrant.fullname" -}}
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

{{- define "cloudgrant.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cloudgrant.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudgrant.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cloudgrant.labels" -}}
helm.sh/chart: {{ include "cloudgrant.chart" . }}
{{ include "cloudgrant.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cloudgrant
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cloudgrant.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudgrant.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cloudgrant.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The profile's name: the built-in name, or the inline profile's own name. */}}
{{- define "cloudgrant.profileName" -}}
{{- if .Values.profile.inline }}
{{- required "profile.inline.name is required" .Values.profile.inline.name }}
{{- else }}
{{- required "profile.name or profile.inline is required" .Values.profile.name }}
{{- end }}
{{- end }}

{{/* The Secret cloudgrant keeps the credential in; the agent's default is cloudgrant-<profile>. */}}
{{- define "cloudgrant.credentialSecretName" -}}
{{- default (printf "cloudgrant-%s" (include "cloudgrant.profileName" .)) .Values.credentialSecret.name }}
{{- end }}

{{- define "cloudgrant.reportTokenSecretName" -}}
{{- if .Values.report.existingSecret.name }}
{{- .Values.report.existingSecret.name }}
{{- else if .Values.report.token }}
{{- printf "%s-report" (include "cloudgrant.fullname" .) }}
{{- end }}
{{- end }}

{{- define "cloudgrant.reportTokenSecretKey" -}}
{{- if .Values.report.existingSecret.name }}{{ .Values.report.existingSecret.key }}{{ else }}token{{ end }}
{{- end }}

{{- define "cloudgrant.cloudSecretName" -}}
{{- if .Values.cloudCredentials.existingSecret }}
{{- .Values.cloudCredentials.existingSecret }}
{{- else if .Values.cloudCredentials.values }}
{{- printf "%s-cloud" (include "cloudgrant.fullname" .) }}
{{- end }}
{{- end }}

{{- define "cloudgrant.hasConfig" -}}
{{- if or .Values.sealKey .Values.report.ca }}true{{ end }}
{{- end }}

{{/* Pod labels: selector labels, the Azure Workload Identity label, the user's own. */}}
{{- define "cloudgrant.podLabels" -}}
{{ include "cloudgrant.labels" . }}
{{- if .Values.workloadIdentity.azure.enabled }}
azure.workload.identity/use: "true"
{{- end }}
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Pod annotations: a checksum of everything the pods read, so a change rolls them. */}}
{{- define "cloudgrant.podAnnotations" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* CLOUDGRANT_* variables for every option set in values: the agent reads them itself. */}}
{{- define "cloudgrant.env" -}}
{{- $v := .Values -}}
- name: CLOUDGRANT_PROFILE
  value: {{ ternary "/etc/cloudgrant/profile/profile.yaml" $v.profile.name (not (empty $v.profile.inline)) | quote }}
- name: CLOUDGRANT_SECRET_NAME
  value: {{ include "cloudgrant.credentialSecretName" . | quote }}
- name: CLOUDGRANT_SECRET_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: CLOUDGRANT_TERMINATION_LOG
  value: /dev/termination-log
- name: CLOUDGRANT_LOG_FORMAT
  value: {{ $v.log.format | quote }}
- name: CLOUDGRANT_LOG_LEVEL
  value: {{ $v.log.level | quote }}
- name: CLOUDGRANT_AWS_MODE
  value: {{ $v.aws.mode | quote }}
{{- with $v.aws.trustPrincipal }}
- name: CLOUDGRANT_AWS_TRUST_PRINCIPAL
  value: {{ . | quote }}
{{- end }}
{{- with $v.aws.externalId }}
- name: CLOUDGRANT_AWS_EXTERNAL_ID
  value: {{ . | quote }}
{{- end }}
{{- with $v.aws.trustPrincipalUrl }}
- name: CLOUDGRANT_TRUST_PRINCIPAL_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.aws.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
{{- with $v.gcp.credential }}
- name: CLOUDGRANT_GCP_CREDENTIAL
  value: {{ . | quote }}
{{- end }}
{{- with $v.gcp.impersonator }}
- name: CLOUDGRANT_GCP_IMPERSONATOR
  value: {{ . | quote }}
{{- end }}
{{- with $v.azure.credential }}
- name: CLOUDGRANT_AZURE_CREDENTIAL
  value: {{ . | quote }}
{{- end }}
{{- with $v.azure.federatedIssuer }}
- name: CLOUDGRANT_AZURE_FEDERATED_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- with $v.azure.federatedSubject }}
- name: CLOUDGRANT_AZURE_FEDERATED_SUBJECT
  value: {{ . | quote }}
{{- end }}
{{- with $v.azure.grant }}
- name: CLOUDGRANT_AZURE_GRANT
  value: {{ . | quote }}
{{- end }}
{{- with $v.cluster.provider }}
- name: CLOUDGRANT_PROVIDER
  value: {{ . | quote }}
{{- end }}
{{- with $v.cluster.name }}
- name: CLOUDGRANT_CLUSTER_NAME
  value: {{ . | quote }}
{{- end }}
{{- with $v.cluster.region }}
- name: CLOUDGRANT_REGION
  value: {{ . | quote }}
{{- end }}
{{- if $v.cluster.noMetadata }}
- name: CLOUDGRANT_NO_METADATA
  value: "true"
{{- end }}
{{- with $v.report.url }}
- name: CLOUDGRANT_REPORT_URL
  value: {{ . | quote }}
{{- end }}
{{- with include "cloudgrant.reportTokenSecretName" . }}
- name: CLOUDGRANT_REPORT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ include "cloudgrant.reportTokenSecretKey" $ }}
{{- end }}
{{- if $v.report.ca }}
- name: CLOUDGRANT_REPORT_CA
  value: /etc/cloudgrant/config/report-ca.pem
{{- end }}
{{- if $v.report.allowInsecure }}
- name: CLOUDGRANT_ALLOW_INSECURE_REPORT
  value: "true"
{{- end }}
{{- if $v.sealKey }}
- name: CLOUDGRANT_SEAL_KEY
  value: /etc/cloudgrant/config/seal-key.pem
{{- end }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cloudgrant.envFrom" -}}
{{- with include "cloudgrant.cloudSecretName" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "cloudgrant.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.profile.inline }}
- name: profile
  mountPath: /etc/cloudgrant/profile
  readOnly: true
{{- end }}
{{- if include "cloudgrant.hasConfig" . }}
- name: config
  mountPath: /etc/cloudgrant/config
  readOnly: true
{{- end }}
{{- end }}

{{- define "cloudgrant.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- if .Values.profile.inline }}
- name: profile
  configMap:
    name: {{ include "cloudgrant.fullname" . }}-profile
{{- end }}
{{- if include "cloudgrant.hasConfig" . }}
- name: config
  configMap:
    name: {{ include "cloudgrant.fullname" . }}-config
{{- end }}
{{- end }}

{{/* The pod spec shared by the Job, the CronJob, the Deployment and the test pod, minus the
containers. */}}
{{- define "cloudgrant.podSpecCommon" -}}
serviceAccountName: {{ include "cloudgrant.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
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
  {{- include "cloudgrant.volumes" . | nindent 2 }}
{{- end }}

{{/* One cloudgrant container. Call with (dict "ctx" $ "name" "onboard" "args" (list ...)). */}}
{{- define "cloudgrant.container" -}}
{{- $ := .ctx -}}
- name: {{ .name }}
  image: {{ include "cloudgrant.image" $ | quote }}
  imagePullPolicy: {{ $.Values.image.pullPolicy }}
  command: ["/usr/local/bin/cloudgrant"]
  args:
    {{- toYaml (concat .args $.Values.extraArgs) | nindent 4 }}
  env:
    {{- include "cloudgrant.env" $ | nindent 4 }}
    {{- with .env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with include "cloudgrant.envFrom" $ }}
  envFrom:
    {{- . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $.Values.securityContext | nindent 4 }}
  resources:
    {{- toYaml $.Values.resources | nindent 4 }}
  # The agent writes its one-line outcome here (CLOUDGRANT_TERMINATION_LOG); the log's tail
  # stands in only if it died before it could.
  terminationMessagePath: /dev/termination-log
  terminationMessagePolicy: FallbackToLogsOnError
  volumeMounts:
    {{- include "cloudgrant.volumeMounts" $ | nindent 4 }}
{{- end }}
