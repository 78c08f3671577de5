#!/bin/sh
# One-shot job: prepare the data the backend serves, then exit 0.
set -e
mkdir -p /data
echo "ok" > /data/status
echo "hello from the backend, set up at $(date -u +%Y-%m-%dT%H:%M:%SZ)" > /data/message
echo "setup: wrote /data/status and /data/message"
