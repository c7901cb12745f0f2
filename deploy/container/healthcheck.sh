#!/bin/bash
# The container's health check: exit 0 when the node answers GET /ready with 200 (the database
# answers, every network works; docs/operations.md). The image has no HTTP client, so this is
# bash's /dev/tcp, on the port of DM3_BRIDGE_NODE__LISTEN (default 0.0.0.0:8080).
set -eu
listen="${DM3_BRIDGE_NODE__LISTEN:-0.0.0.0:8080}"
port="${listen##*:}"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 5 status <&3
case "$status" in
"HTTP/1.1 200"*) exit 0 ;;
*) echo "GET /ready: ${status%$'\r'}" >&2; exit 1 ;;
esac
