#!/usr/bin/env bash
# EKS-style node provisioning: NodeConfig → exec-plugin kubeconfig + nodecred config (serving certificate
# only). A thin launcher for scripts/lib/eks-provision.ts on nodecred's pinned Node; `--help` for flags.
set -euo pipefail
self=$(readlink -f "$0")
# The nodecred installation this script belongs to (examples/eks/ inside it), or NODECRED_HOME.
root=${NODECRED_HOME:-$(cd "$(dirname "$self")/../.." && pwd)}
node="$root/node_modules/.bin/node"
helper="$root/scripts/lib/eks-provision.ts"
[[ -x $node ]] || { echo "provision: $node not found: install nodecred (with its node_modules) or set NODECRED_HOME" >&2; exit 1; }
[[ -r $helper ]] || { echo "provision: $helper not found: NODECRED_HOME=$root is not a nodecred installation" >&2; exit 1; }
exec "$node" "$helper" "$@"
