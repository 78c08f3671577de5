#!/bin/sh
# Proxy to the backend (the way an nginx frontend proxies to its upstream).
echo "Content-Type: text/plain"
echo
exec wget -q -O - "${BACKEND_URL:-http://backend:8081}/message"
