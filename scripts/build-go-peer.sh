#!/usr/bin/env bash
# Builds scripts/peers/go-plugin (the hashicorp/go-plugin peer of plg's isolation
# benchmarks) offline, in GOPATH mode, against Debian's go-plugin and gRPC packages.
# Usage: scripts/build-go-peer.sh OUTPUT
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$1"
gopath="$(mktemp -d)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/greet-go" "$gopath/src/plgpeer"
cp -r "$root/plugins/greet-go/plgv1" "$gopath/src/greet-go/plgv1"
cp "$root/scripts/peers/go-plugin/main.go" "$gopath/src/plgpeer/"
cd "$gopath/src/plgpeer"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="${GOCACHE:-$gopath/cache}" \
  go build -o "$out" .
