#!/usr/bin/env bash
# Build and run the libFuzzer harnesses (recipe verified in ../shared/TOOLCHAIN.md §2).
#
#   Fuzz/run.sh TARGET [SECONDS]   run one target (default 60 s)
#   Fuzz/run.sh --all SECONDS      run every target in turn
#   Fuzz/run.sh --regressions      replay Fuzz/FailCases/ and Fixtures/fuzz-regressions/ and exit
#   Fuzz/run.sh --list             print the targets
#
# New inputs go to a scratch folder; Fuzz/Corpus/<Target>/ (seeded from Fixtures/) is read only
# here, unless MERGE=1: then the inputs that add coverage are merged into it (libFuzzer's
# -merge=1, which keeps the corpus minimal) after the run. Crashes are written to
# Fuzz/FailCases/<Target>-crash-<sha1>: keep them, and add each as a regression test in the root
# package (Fixtures/fuzz-regressions/).
set -euo pipefail
cd "$(dirname "$0")"
TARGETS=(FuzzFrameHeader FuzzUnmask FuzzUTF8 FuzzProtocolServer FuzzProtocolClient FuzzHandshakeServer FuzzHandshakeClient
         FuzzDeflateInflate FuzzExtensionHeader FuzzProxySettings)

build() {
    # One comma-joined -sanitize flag: SwiftPM's separate --sanitize=address is dropped for Swift.
    swift build -c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld 2>&1 | tail -1
}

export SWIFT_BACKTRACE=enable=no   # Swift's crash handler trips ASan after a trap

run_target() {
    local target=$1 seconds=$2
    mkdir -p "Corpus/$target" FailCases
    [ -n "$(ls -A "Corpus/$target" 2>/dev/null)" ] || python3 seed.py
    local scratch rc=0
    scratch=$(mktemp -d)
    echo "== $target for ${seconds}s"
    ".build/release/$target" "$scratch" "Corpus/$target" -dict=dictionary.txt -max_len=4096 \
        -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="FailCases/$target-" \
        >"$scratch.log" 2>&1 || rc=$?
    grep -E '^(stat::|#[0-9]+ *DONE|==[0-9]+==|SUMMARY|.*Fatal error|.*deadly signal|Done |INFO: Seed)' "$scratch.log" || true
    grep -E '^#[0-9]+' "$scratch.log" | tail -1 || true   # the last status line: cov, ft, corpus
    if [ "$rc" -eq 0 ] && [ "${MERGE:-0}" = 1 ]; then
        ".build/release/$target" -merge=1 "Corpus/$target" "$scratch" >"$scratch.merge" 2>&1 || true
        grep -E 'MERGE-OUTER: [0-9]+ new files' "$scratch.merge" || true
        rm -f "$scratch.merge"
    fi
    [ "$rc" -ne 0 ] && { echo "$target: FAILED (exit $rc); the input is in Fuzz/FailCases/"; tail -40 "$scratch.log"; }
    rm -rf "$scratch" "$scratch.log"
    return "$rc"
}

case "${1:-}" in
    --list) printf '%s\n' "${TARGETS[@]}" ;;
    --all)
        build
        for t in "${TARGETS[@]}"; do run_target "$t" "${2:-30}"; done ;;
    --regressions)
        build
        shopt -s nullglob
        for t in "${TARGETS[@]}"; do
            cases=(FailCases/"$t"-*)
            # Fixed crashes kept as root-package regression fixtures: server-*.bin / client-*.bin.
            case "$t" in
                FuzzProtocolServer) cases+=(../Fixtures/fuzz-regressions/server-*.bin) ;;
                FuzzProtocolClient) cases+=(../Fixtures/fuzz-regressions/client-*.bin) ;;
                FuzzHandshakeServer) cases+=(../Fixtures/fuzz-regressions/handshake-server-*.bin) ;;
                FuzzHandshakeClient) cases+=(../Fixtures/fuzz-regressions/handshake-client-*.bin) ;;
                FuzzDeflateInflate) cases+=(../Fixtures/fuzz-regressions/deflate-inflate-*.bin) ;;
                FuzzProxySettings) cases+=(../Fixtures/fuzz-regressions/proxy-settings-*.bin) ;;
            esac
            [ ${#cases[@]} -eq 0 ] && continue
            echo "== $t: ${#cases[@]} regression input(s)"
            ".build/release/$t" "${cases[@]}" >/dev/null 2>&1 || { echo "$t: a regression input crashes again"; exit 1; }
        done
        echo "regressions: ok" ;;
    ""|-h|--help) sed -n '2,12p' "$0" ;;
    *)
        build
        run_target "$1" "${2:-60}" ;;
esac
