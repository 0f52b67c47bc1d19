#!/usr/bin/env bash
# Regenerates plugins/greet-go/plgv1 from protocol/proto/plg/v1/plugin.proto. The generated
# code is committed, so building the sample needs no protoc. Needs Debian's
# protobuf-compiler, golang-goprotobuf-dev and protoc-gen-go-grpc.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/plugins/greet-go/plgv1"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc -I "$root/protocol/proto" \
  --go_out="$tmp" --go_opt=paths=source_relative --go_opt=Mplg/v1/plugin.proto=greet-go/plgv1 \
  --go-grpc_out="$tmp" --go-grpc_opt=paths=source_relative \
  --go-grpc_opt=Mplg/v1/plugin.proto=greet-go/plgv1 \
  plg/v1/plugin.proto
mkdir -p "$out"
for f in "$tmp"/plg/v1/*.go; do
  # Debian's protoc-gen-go names the package after the proto package (plg_v1); the import
  # path's last element is plgv1, as protoc-gen-go-grpc has it.
  sed 's/^package plg_v1$/package plgv1/' "$f" >"$out/$(basename "$f")"
done
