# Shared by the cluster-side scripts (create-bootstrap-token, setup-cluster-info, create-monitoring-token).
# Sourced, never executed. The caller sets PROG (its name, for messages) before sourcing.
#
# Conventions: stdout carries only the script's product (a kubeconfig, flags, a token); progress and errors
# go to stderr, one line each, prefixed with the script's name. Errors name the flag or object and the fix.
# Exit codes: 0 done, 1 failed, 2 usage error. Secrets never reach stderr, argv or a world-readable file.
# shellcheck shell=bash

: "${PROG:?set PROG before sourcing scripts/lib/common.sh}"

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: %s\n' "$PROG" "$*" >&2; exit 1; }
usage_error() { printf '%s: %s (see %s --help)\n' "$PROG" "$*" "$PROG" >&2; exit 2; }

# Private scratch space, removed on exit. Token kubeconfigs and the like live here (0700 directory).
TMP=$(mktemp -d "${TMPDIR:-/tmp}/${PROG}.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
chmod 700 "$TMP"

# Strings scrubbed from every kubectl error line we repeat (set REDACT to the token secret once known).
REDACT=''

KUBECTL_BIN=${KUBECTL:-kubectl}
KUBECONFIG_ARGS=()

require_tools() {
  command -v "$KUBECTL_BIN" >/dev/null 2>&1 || die "kubectl not found (looked for \"$KUBECTL_BIN\"): install kubectl" \
    "or set KUBECTL=/path/to/kubectl"
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found: install it (Debian/Ubuntu: apt-get install $tool)"
  done
}

# --kubeconfig FILE: used for every kubectl call (else kubectl's own KUBECONFIG / ~/.kube/config).
use_kubeconfig() {
  [[ -r $1 ]] || usage_error "--kubeconfig $1: file does not exist or is not readable"
  KUBECONFIG_ARGS=(--kubeconfig "$1")
}

kubeconfig_label() {
  if ((${#KUBECONFIG_ARGS[@]})); then
    printf '%s' "${KUBECONFIG_ARGS[1]}"
  else
    printf '%s' "${KUBECONFIG:-~/.kube/config}"
  fi
}

kc() { "$KUBECTL_BIN" "${KUBECONFIG_ARGS[@]}" "$@"; }

# kc_do WHAT ARGS...: kubectl with the chosen kubeconfig; prints its stdout. On failure: one line naming WHAT
# and kubectl's last error line (with REDACT scrubbed), exit 1. Use as `var=$(kc_do ...)`, never with
# `local var=$(...)` (which would hide the failure).
kc_do() {
  local what=$1 out msg
  shift
  if ! out=$(kc "$@" 2>"$TMP/kubectl.err"); then
    msg=$(grep -v '^[[:space:]]*$' "$TMP/kubectl.err" | tail -n 1 || true)
    msg=${msg#error: }
    if [[ -n $REDACT ]]; then msg=${msg//"$REDACT"/<redacted>}; fi
    die "$what failed: ${msg:-kubectl exited with an error} (kubeconfig: $(kubeconfig_label))"
  fi
  printf '%s' "$out"
}

# kc_apply WHAT MANIFEST-ON-STDIN: server-side apply as this script's field manager. Re-applying the same
# manifest is a no-op on the server (no new resourceVersion), which is what makes the scripts idempotent;
# --force-conflicts: the objects these scripts name are theirs to define.
kc_apply() {
  local what=$1 out line
  out=$(kc_do "$what" apply --server-side --force-conflicts --field-manager="nodecred-$PROG" -f -)
  while IFS= read -r line; do if [[ -n $line ]]; then say "$line"; fi; done <<<"$out"
}

# Fails early, with the fix, when the kubeconfig's user may not do what the script needs.
require_permission() {
  local verb=$1 resource=$2 namespace=${3:-} answer
  local args=(auth can-i "$verb" "$resource")
  if [[ -n $namespace ]]; then args+=(-n "$namespace"); fi
  answer=$(kc "${args[@]}" 2>"$TMP/can-i.err" || true)
  if [[ $answer != yes ]]; then
    if [[ $answer == no ]]; then
      die "the kubeconfig's user may not $verb $resource${namespace:+ in $namespace}: run with a cluster-admin" \
        "kubeconfig (--kubeconfig FILE or KUBECONFIG)"
    fi
    local msg
    msg=$(grep -v '^[[:space:]]*$' "$TMP/can-i.err" | tail -n 1 || true)
    die "cannot reach the API server with kubeconfig $(kubeconfig_label): ${msg#error: } (check --kubeconfig /" \
      "KUBECONFIG and that the API server is up)"
  fi
}

# Sets KC_SERVER and KC_CA_PEM from the kubeconfig's current context (one kubectl call). The CA is
# certificate-authority-data, or the file named by certificate-authority (--flatten inlines it); empty when
# the kubeconfig trusts the system roots.
read_kubeconfig_cluster() {
  local out
  out=$(kc_do "reading the cluster of kubeconfig $(kubeconfig_label)" config view --minify --flatten --raw \
    -o 'jsonpath={.clusters[0].cluster.server}{"\n"}{.clusters[0].cluster.certificate-authority-data}')
  KC_SERVER=${out%%$'\n'*}
  KC_CA_PEM=''
  if [[ $out == *$'\n'* && -n ${out#*$'\n'} ]]; then KC_CA_PEM=$(printf '%s' "${out#*$'\n'}" | base64 -d); fi
}

# resolve_cluster API_SERVER_FLAG CA_FILE_FLAG: sets SERVER and CA_PEM from the flags or the kubeconfig.
resolve_cluster() {
  local api_server=$1 ca_file=$2
  read_kubeconfig_cluster
  SERVER=${api_server:-$KC_SERVER}
  [[ $SERVER =~ ^https://[^/[:space:]]+(/[^[:space:]]*)?$ ]] \
    || die "API server URL \"$SERVER\" is not an https:// URL: pass --api-server https://HOST:PORT"
  SERVER=${SERVER%/}
  if [[ -n $ca_file ]]; then
    [[ -r $ca_file ]] || usage_error "--ca-file $ca_file: file does not exist or is not readable"
    CA_PEM=$(<"$ca_file")
  else
    CA_PEM=$KC_CA_PEM
  fi
  [[ $CA_PEM == *'-----BEGIN CERTIFICATE-----'* ]] \
    || die "kubeconfig $(kubeconfig_label) has no cluster CA (certificate-authority-data or certificate-authority):" \
      "pass --ca-file /etc/kubernetes/pki/ca.crt"
  CA_PEM+=$'\n'
}

# The kubeadm discovery pins of a PEM bundle on stdin: "sha256:<hex of SHA-256 of the DER
# SubjectPublicKeyInfo>", one line per certificate, as `--discovery-token-ca-cert-hash` expects.
ca_pin_hashes() {
  local dir="$TMP/ca-split" f
  rm -rf "$dir" && mkdir "$dir"
  awk -v dir="$dir" '
    /-----BEGIN CERTIFICATE-----/ { n++; f = sprintf("%s/%03d.pem", dir, n) }
    f { print > f }
    /-----END CERTIFICATE-----/ { close(f); f = "" }'
  for f in "$dir"/*.pem; do
    [[ -e $f ]] || die "the cluster CA bundle holds no certificate"
    printf 'sha256:%s\n' \
      "$(openssl x509 -in "$f" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | cut -d' ' -f1)"
  done
}

# Go-style duration (24h, 90m, 1h30m, 3600s; "0" is zero) → seconds on stdout; returns 1 when malformed.
duration_seconds() {
  local d=$1 total=0 n
  if [[ $d == 0 ]]; then echo 0; return 0; fi
  [[ $d =~ ^([0-9]+[hms])+$ ]] || return 1
  while [[ $d =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n=$((10#${BASH_REMATCH[1]}))
    case ${BASH_REMATCH[2]} in
      h) total=$((total + n * 3600)) ;;
      m) total=$((total + n * 60)) ;;
      s) total=$((total + n)) ;;
    esac
    d=${BASH_REMATCH[3]}
  done
  echo "$total"
}

rfc3339_in() { date -u -d "@$(($(date +%s) + $1))" +%Y-%m-%dT%H:%M:%SZ; }

b64() { printf '%s' "$1" | base64 -w0; }

# A kubeconfig (on stdout) for SERVER/CA_PEM with the user given as YAML lines (indented 4 spaces).
render_kubeconfig() {
  local cluster=$1 user=$2 user_yaml=$3
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $cluster
  cluster:
    certificate-authority-data: $(b64 "$CA_PEM")
    server: $SERVER
contexts:
- name: $user@$cluster
  context:
    cluster: $cluster
    user: $user
current-context: $user@$cluster
preferences: {}
users:
- name: $user
  user:
$user_yaml
EOF
}

# write_private FILE: stdin → FILE, mode 0600, replaced atomically (a reader never sees half a file).
write_private() {
  local file=$1 dir tmp
  dir=$(dirname -- "$file")
  [[ -d $dir ]] || die "cannot write $file: directory $dir does not exist"
  tmp=$(umask 077 && mktemp "$dir/.${file##*/}.XXXXXX") || die "cannot write to $dir (permissions?)"
  if ! cat >"$tmp"; then rm -f "$tmp"; die "cannot write $file"; fi
  chmod 600 "$tmp"
  mv -f "$tmp" "$file" || { rm -f "$tmp"; die "cannot replace $file"; }
}

# The value of a flag that takes one: fails with a usage error when it is missing.
need_value() {
  if (($# < 2)) || [[ $2 == --* ]]; then usage_error "$1 needs a value"; fi
}
