#!/usr/bin/env bash
# Fuzzes plugd's hostile-input readers: every cargo-fuzz target in fuzz/ runs for
# SECONDS_EACH seconds (default 600), one after the other (they would only fight
# over the cores in parallel). Exits non-zero when any target crashes, hangs or
# leaks past its memory limit; the input that did it is in fuzz/artifacts/<target>/.
#
#   scripts/fuzz.sh [SECONDS_EACH] [TARGET...]
#
# Needs the nightly toolchain (sanitizers); installs cargo-fuzz when missing.
# Seed corpora are built from examples/ each run, so the fuzzers start from real
# manifests, packages and protocol lines rather than from nothing.
set -euo pipefail

seconds_each="${1:-600}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

seed() {
    # manifest: first byte picks manifest.yaml / manifest.json / plugin.yaml.
    mkdir -p corpus/manifest corpus/unpack corpus/ndjson corpus/signature
    local i=0 f
    for f in "$root"/examples/*/manifest.yaml "$root"/examples/*/manifest.json "$root"/examples/*/plugin.yaml; do
        [ -f "$f" ] || continue
        case "$(basename "$f")" in
            manifest.yaml) pick='\x00' ;;
            manifest.json) pick='\x01' ;;
            plugin.yaml) pick='\x02' ;;
        esac
        { printf "$pick"; cat "$f"; } > "corpus/manifest/seed-$i"
        i=$((i + 1))
    done
    # unpack: even first byte = the rest is the .tar.gz; odd = the rest is a .tar.
    local dir
    i=0
    for dir in "$root"/examples/*/; do
        { printf '\x00'; tar -C "$dir" -czf - . 2>/dev/null; } > "corpus/unpack/seed-gz-$i" || true
        { printf '\x01'; tar -C "$dir" -cf - . 2>/dev/null; } > "corpus/unpack/seed-tar-$i" || true
        i=$((i + 1))
    done
    # ndjson: responses as plugins write them, whole and split.
    printf '\x40{"id":"1","status":"ok","code":0,"body":{"a":1}}\n{"id":"2","status":"error","code":201,"message":"bad"}\n' > corpus/ndjson/seed-0
    printf '\x11{"id":"3","status":"busy"}\r\n{"id":"4","status":"ok","meta":{"t":1}}' > corpus/ndjson/seed-1
    printf '\xff%s\n' "$(head -c 3000 /dev/zero | tr '\0' 'x')" > corpus/ndjson/seed-2
    # signature: a real `plugd sign` output and a public key file.
    cat > corpus/signature/seed-sig <<'SIG'
untrusted comment: plugd signature by key C4219C8EE65A2A12 public key RWQSKlrmjpwhxA3B73ZX4i/aiYiLVf1uXKUKG8U1ypgvPGa/AVhwkudI
RUQSKlrmjpwhxGkVtOXqqnoOHJLxfD7FTgDsl/VEE/5bG9wSk3Tz9jT8Xg2CHIlSZdxmaof+TODEPAhxUgztFIYXrggdKnzRkgc=
trusted comment: plugd-signature-v1 id=python-echo version=1.0.0 digest=sha256:1ccec490e99452665d791e7ac228cbe0322597957480c7229469102c1aa54745
zSKsyoPfxVf/vmXPpaLxn2q7RoMdPDLzlapWGepLt+seiltYysqD8gu9c9mHd7Qrz+9qvPyqDk/7f5ah5p6tCw==
SIG
    cat > corpus/signature/seed-pub <<'PUB'
untrusted comment: plugd key `default` public key C4219C8EE65A2A12
RWQSKlrmjpwhxA3B73ZX4i/aiYiLVf1uXKUKG8U1ypgvPGa/AVhwkudI
PUB
}
seed

status=0
for target in "${targets[@]}"; do
    echo "== fuzzing $target for ${seconds_each}s"
    # -rss_limit_mb: the unpacker runs with 1 MiB limits, so 2 GiB means a leak.
    if cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds_each" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "== $target: no crash in ${seconds_each}s"
    else
        echo "== $target: FAILED; the input is in fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
