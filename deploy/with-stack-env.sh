#!/usr/bin/env bash
# Runs a command with the local stack's settings (.stack/env, written by
# `deploy/stack.sh up`; .stack/tls/env with MEDIA_STACK_SECURITY=tls) for every MEDIA_*
# variable the environment does not set already: what you export yourself always wins.
set -euo pipefail
base=${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack}
case ${MEDIA_STACK_SECURITY:-plain} in
  plain) env_file=$base/env ;;
  tls) env_file=$base/tls/env ;;
  *) echo "MEDIA_STACK_SECURITY must be plain or tls, got ${MEDIA_STACK_SECURITY}" >&2; exit 2 ;;
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
