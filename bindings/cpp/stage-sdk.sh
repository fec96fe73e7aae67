#!/usr/bin/env bash
# Lays out an installable SDK prefix from a cargo build:
#
#   bindings/cpp/stage-sdk.sh LIB_DIR PREFIX      (e.g. target/release /opt/autocontour)
#
# PREFIX/include/{autocontour.h,autocontour.hpp}, PREFIX/lib/libautocontour.so (+ .a if built),
# PREFIX/lib/cmake/autocontour/ (find_package(autocontour CONFIG)) and
# PREFIX/lib/pkgconfig/autocontour.pc (pkg-config --cflags --libs autocontour).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
lib_dir=$1
mkdir -p "$2"
prefix=$(cd "$2" && pwd)
hdr="$root/include/autocontour.h"
major=$(sed -n 's/^#define AC_VERSION_MAJOR \([0-9]*\)$/\1/p' "$hdr")
minor=$(sed -n 's/^#define AC_VERSION_MINOR \([0-9]*\)$/\1/p' "$hdr")
patch=$(sed -n 's/^#define AC_VERSION_PATCH \([0-9]*\)$/\1/p' "$hdr")
version="$major.$minor.$patch"

mkdir -p "$prefix/include" "$prefix/lib/cmake/autocontour" "$prefix/lib/pkgconfig"
cp "$hdr" "$root/bindings/cpp/autocontour.hpp" "$prefix/include/"
cp "$lib_dir/libautocontour.so" "$prefix/lib/"
if [ -f "$lib_dir/libautocontour.a" ]; then cp "$lib_dir/libautocontour.a" "$prefix/lib/"; fi
cp "$root/bindings/cpp/cmake/autocontourConfig.cmake" "$prefix/lib/cmake/autocontour/"
sed -e "s/@VERSION@/$version/" -e "s/@MAJOR@/$major/" -e "s/@MINOR@/$minor/" \
  "$root/bindings/cpp/cmake/autocontourConfigVersion.cmake.in" \
  > "$prefix/lib/cmake/autocontour/autocontourConfigVersion.cmake"
sed -e "s|@PREFIX@|$prefix|" -e "s/@VERSION@/$version/" \
  "$root/bindings/cpp/autocontour.pc.in" > "$prefix/lib/pkgconfig/autocontour.pc"
echo "autocontour $version staged in $prefix"
