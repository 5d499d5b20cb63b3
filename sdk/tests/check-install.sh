#!/bin/bash
# After `meson install`, an example builds outside the tree with one
# `cc x.c $(pkg-config --cflags --libs nbdsdk)` line (the GLib one with glib-2.0
# added, gznbd with zlib, xnbd-sync with sd-event and GLib), and the headers compile
# alone, as C and as C++. Usage: check-install.sh BUILDDIR SOURCEDIR [SANITIZERS]
# (SANITIZERS: the build's b_sanitize value, which the example must match).
set -euo pipefail
build=$1
src=$2
san=()
if [ "${3:-none}" != none ]; then
        san=(-fsanitize="$3")
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name nbdsdk.pc -print -quit)
[ -n "$pc" ] || { echo "FAIL: nbdsdk.pc was not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root


# The one-line build of the example, from a copy outside the tree.
cp "$src/examples/ramdisk/ramdisk.c" "$tmp/"
cc "${san[@]}" "$tmp/ramdisk.c" -o "$tmp/ramdisk" $(pkg-config --cflags --libs nbdsdk)
libdir=$(pkg-config --variable=libdir nbdsdk)
size=$(LD_LIBRARY_PATH=$libdir timeout 30 "$tmp/ramdisk" 64M --run 'nbdinfo --size "$uri"')
[ "$size" = 67108864 ] || { echo "FAIL: the out-of-tree ramdisk served size '$size'"; exit 1; }

# The GLib example builds the same way, with GLib added to the line.
glib_flags=$(PKG_CONFIG_SYSROOT_DIR= pkg-config --cflags --libs glib-2.0)
cp "$src/examples/glib-app/glib-app.c" "$tmp/"
cc "${san[@]}" "$tmp/glib-app.c" -o "$tmp/glib-app" $(pkg-config --cflags --libs nbdsdk) $glib_flags
rc=0
LD_LIBRARY_PATH=$libdir "$tmp/glib-app" 2>/dev/null || rc=$?
[ "$rc" = 2 ] || { echo "FAIL: the out-of-tree glib-app did not run (exit $rc, expected its usage error 2)"; exit 1; }

# gznbd (several files, and zlib) builds the same way, and serves.
zlib_flags=$(PKG_CONFIG_SYSROOT_DIR= pkg-config --cflags --libs zlib)
mkdir "$tmp/gznbd"
cp "$src"/examples/gznbd/*.[ch] "$tmp/gznbd/"
cc "${san[@]}" -D_GNU_SOURCE "$tmp"/gznbd/*.c -o "$tmp/gznbd/gznbd" $(pkg-config --cflags --libs nbdsdk) $zlib_flags
head -c 100000 /dev/zero | gzip -c >"$tmp/zero.gz"
size=$(LD_LIBRARY_PATH=$libdir timeout 30 "$tmp/gznbd/gznbd" "$tmp/zero.gz" --run 'nbdinfo --size "$uri"')
[ "$size" = 100000 ] || { echo "FAIL: the out-of-tree gznbd served size '$size'"; exit 1; }

# xnbd-sync (several files, sd-event and GLib) too.
sys_flags=$(PKG_CONFIG_SYSROOT_DIR= pkg-config --cflags --libs libsystemd glib-2.0)
mkdir "$tmp/xnbd-sync"
cp "$src"/examples/xnbd-sync/*.[ch] "$tmp/xnbd-sync/"
cc "${san[@]}" -D_GNU_SOURCE "$tmp"/xnbd-sync/*.c -o "$tmp/xnbd-sync/xnbd-sync" $(pkg-config --cflags --libs nbdsdk) $sys_flags
head -c 70000 /dev/zero >"$tmp/xs.img"
size=$(LD_LIBRARY_PATH=$libdir timeout 30 "$tmp/xnbd-sync/xnbd-sync" "$tmp/xs.img" --run 'nbdinfo --size "$uri"')
[ "$size" = 70000 ] || { echo "FAIL: the out-of-tree xnbd-sync served size '$size'"; exit 1; }

# Every public header compiles on its own, as C and as C++, warning-free.
# nbdsdk-glib.h also needs GLib's flags, which are the system's, not the
# staged root's.
cflags="$(pkg-config --cflags nbdsdk) $(PKG_CONFIG_SYSROOT_DIR= pkg-config --cflags glib-2.0)"
for h in $(cd "$(pkg-config --variable=includedir nbdsdk)/nbdsdk" && ls *.h); do
        printf '#include <nbdsdk/%s>\nint main(void) { return 0; }\n' "$h" > "$tmp/h.c"
        cc -std=c99 -Wall -Wextra -Werror -pedantic -c "$tmp/h.c" -o "$tmp/h.o" $cflags ||
                { echo "FAIL: $h does not compile alone as C"; exit 1; }
        if command -v c++ >/dev/null; then
                cp "$tmp/h.c" "$tmp/h.cc"
                c++ -Wall -Wextra -Werror -c "$tmp/h.cc" -o "$tmp/h.o" $cflags ||
                        { echo "FAIL: $h does not compile alone as C++"; exit 1; }
        fi
done

# Only the public API is exported.
so=$(find "$tmp/root" -name 'libnbdsdk.so.0' -print -quit)
bad=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDB]/ && $3 !~ /^nbdsdk_/ {print $3}' | grep -v '^NBDSDK_' || true)
[ -z "$bad" ] || { echo "FAIL: libnbdsdk exports non-API symbols: $bad"; exit 1; }
echo "ok: installed library, pkg-config build, headers, exports"
