#!/usr/bin/env bash
# Builds wsx and service-tour as static executables: the Swift runtime, Foundation, glibc,
# OpenSSL and zlib linked in, nothing loaded at start, and the code that runs laid out together
# (Deploy/symbols.order) so that little of the rest is ever mapped. README, "A static build".
#
#   Deploy/static-build.sh                  (from the repository root; binaries in .build-static/release/)
#   Deploy/static-build.sh --no-order       (the same without the symbol order)
#   Deploy/static-build.sh --build-path DIR
#
# Needs what `swift build` needs plus the static libraries of libssl-dev, zlib1g-dev and libc6-dev
# (Debian and Ubuntu ship them in those packages). The linker warns that glibc's getaddrinfo and
# dlopen may load, at run time, shared libraries of the glibc it was linked with (the name
# services of /etc/nsswitch.conf): where host names are resolved, run it with that glibc.
set -euo pipefail
cd "$(dirname "$0")/.."
order=1
path=.build-static
while [ $# -gt 0 ]; do
    case $1 in
        --no-order) order=0 ;;
        --build-path) path=$2; shift ;;
        *) echo "usage: Deploy/static-build.sh [--no-order] [--build-path DIR]" >&2; exit 2 ;;
    esac
    shift
done
# Each Swift function in a section of its own (swiftc otherwise puts many in one `.text`), so
# that lld can place it by the order.
flags=(-c release --build-path "$path" --static-swift-stdlib -Xswiftc -static-executable -Xswiftc -use-ld=lld
       -Xswiftc -Xfrontend -Xswiftc -function-sections)
if [ "$order" = 1 ]; then
    flags+=(-Xlinker "--symbol-ordering-file=$PWD/Deploy/symbols.order" -Xlinker --no-warn-symbol-ordering)
fi
# SwiftPM does not know that the order file is an input of the link: relink every time.
rm -f "$path/release/wsx" "$path/release/service-tour"
swift build "${flags[@]}" --product wsx
swift build "${flags[@]}" --product service-tour
echo "static binaries: $path/release/wsx $path/release/service-tour"
