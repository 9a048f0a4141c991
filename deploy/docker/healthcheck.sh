#!/bin/bash
# Container health probe for llm-judge: `llm-judge-healthcheck [PATH]` (default /healthz).
#
# The runtime image is debian:bookworm-slim without curl or wget, and the service has no health
# subcommand, so the probe speaks HTTP/1.0 over bash's built-in /dev/tcp: no extra package, nothing
# to pin or patch. Exit 0 when the answer's status line is 200, 1 otherwise (refused, timed out,
# 503 while shutting down, ...). The port comes from LLM_JUDGE_LISTEN, as the server's does.
set -u
path="${1:-/healthz}"
listen="${LLM_JUDGE_LISTEN:-127.0.0.1:8080}"
port="${listen##*:}"
if ! { exec 3<>"/dev/tcp/127.0.0.1/${port}"; } 2>/dev/null; then
  echo "unhealthy: nothing listening on 127.0.0.1:${port}" >&2
  exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
status=""
IFS= read -r -t 3 status <&3 || true
exec 3<&-
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *) echo "unhealthy: GET ${path} answered '${status%$'\r'}'" >&2; exit 1 ;;
esac
