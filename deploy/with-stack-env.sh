#!/usr/bin/env bash
# Runs a command with the local stack's settings (.stack/env, written by
# `deploy/stack.sh up`; .stack/<variant>/env for MEDIA_STACK_SECURITY=tls and/or
# MEDIA_STACK_REDIS=cluster) for every MEDIA_*
# variable the environment does not set already: what you export yourself always wins.
set -euo pipefail
base=${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack}
case ${MEDIA_STACK_SECURITY:-plain}/${MEDIA_STACK_REDIS:-single} in
  plain/single) env_file=$base/env ;;
  tls/single) env_file=$base/tls/env ;;
  plain/cluster) env_file=$base/cluster/env ;;
  tls/cluster) env_file=$base/tls-cluster/env ;;
  *) echo "MEDIA_STACK_SECURITY must be plain or tls and MEDIA_STACK_REDIS single or cluster" >&2
     exit 2 ;;
esac
if [[ -f $env_file ]]; then
  while IFS= read -r line; do
    [[ $line =~ ^export\ (MEDIA_[A-Z0-9_]+)=(.*)$ ]] || continue
    name=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    value=${value#[\"\']}
    value=${value%[\"\']}
    [[ -n ${!name+set} ]] || export "$name=$value"
  done <"$env_file"
fi
exec "$@"
