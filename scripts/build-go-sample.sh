#!/usr/bin/env bash
# Builds plugins/greet-go (a hashicorp/go-plugin plugin) offline, in GOPATH mode, against
# Debian's golang-github-hashicorp-go-plugin-dev and golang-google-grpc-dev:
#   apt-get install golang-go golang-github-hashicorp-go-plugin-dev golang-google-grpc-dev
# Writes plugins/greet-go/greet-go. Usage: scripts/build-go-sample.sh [OUTPUT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/plugins/greet-go/greet-go}"
gopath="$(mktemp -d)"
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src"
cp -r "$root/plugins/greet-go" "$gopath/src/greet-go"
rm -f "$gopath/src/greet-go/greet-go"
cd "$gopath/src/greet-go"
GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" GOCACHE="${GOCACHE:-$gopath/cache}" GOFLAGS=-mod=mod \
  go build -o "$out" .
