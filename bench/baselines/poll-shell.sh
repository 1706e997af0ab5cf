#!/usr/bin/env bash
# The polling shell flow the field reports (seeds/) describe: openssl makes the key and the CSR,
# `kubectl create -f` submits it with the bootstrap kubeconfig, then `kubectl get csr` once a second until
# the certificate appears; the key, certificate and a kubeconfig are written with plain redirections (no
# fsync, no verification). Bounded: gives up after MAX_POLLS polls.
#
# Environment: KUBECTL, BOOTSTRAP_KUBECONFIG, NODE_NAME, OUT_DIR, APISERVER, CA_FILE, [MAX_POLLS=120]
# Prints "csr=<name> done=<seconds.nanoseconds since epoch>" on success.
set -euo pipefail
: "${KUBECTL:?}" "${BOOTSTRAP_KUBECONFIG:?}" "${NODE_NAME:?}" "${OUT_DIR:?}" "${APISERVER:?}" "${CA_FILE:?}"
max_polls=${MAX_POLLS:-120}
mkdir -p "$OUT_DIR"
umask 077
k() { "$KUBECTL" --kubeconfig "$BOOTSTRAP_KUBECONFIG" --cache-dir "$OUT_DIR/.kube-cache" "$@"; }

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$OUT_DIR/node.key" 2>/dev/null
openssl req -new -key "$OUT_DIR/node.key" -subj "/O=system:nodes/CN=system:node:$NODE_NAME" -out "$OUT_DIR/node.csr"
name="shell-$NODE_NAME-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
cat > "$OUT_DIR/csr.yaml" <<YAML
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata:
  name: $name
spec:
  request: $(base64 -w0 < "$OUT_DIR/node.csr")
  signerName: kubernetes.io/kube-apiserver-client-kubelet
  usages: [digital signature, client auth]
YAML
k create -f "$OUT_DIR/csr.yaml" >/dev/null

cert=""
for _ in $(seq 1 "$max_polls"); do
  cert=$(k get csr "$name" -o jsonpath='{.status.certificate}')
  [[ -n $cert ]] && break
  sleep 1
done
if [[ -z $cert ]]; then
  echo "poll-shell: CSR $name not issued after $max_polls polls" >&2
  exit 1
fi
echo "$cert" | base64 -d > "$OUT_DIR/node.crt"
cat > "$OUT_DIR/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: $APISERVER, certificate-authority: $CA_FILE}
users:
- name: node
  user: {client-certificate: $OUT_DIR/node.crt, client-key: $OUT_DIR/node.key}
contexts:
- name: node
  context: {cluster: local, user: node}
current-context: node
KC
echo "csr=$name done=$(date +%s.%N)"
