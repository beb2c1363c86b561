#!/usr/bin/env bash
# Runs a command with the local stack's settings (.stack/env, written by
# `deploy/stack.sh up`) for every MEDIA_* variable the environment does not set
# already: what you export yourself always wins.
set -euo pipefail
env_file=${STACK_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.stack}/env
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
