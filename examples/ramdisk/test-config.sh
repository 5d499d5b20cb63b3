#!/bin/bash
# nbdsdk_main's --config FILE, checked on the ramdisk with real clients:
# several exports with their sizes and descriptions, the default export for
# the empty name, a read-only export, [general] keys and the command line
# winning over them, and one "FILE:LINE: ..." message for each bad file.
# Usage: test-config.sh RAMDISK
set -euo pipefail
ramdisk=$1
command -v nbdinfo >/dev/null || { echo "SKIP: nbdinfo (libnbd-bin) is missing"; exit 77; }
# shellcheck source=../test-lib.bash
source "$(dirname "$0")/../test-lib.bash"

cat >"$tmp/two.conf" <<EOF
# Two RAM disks; the big one is read-only and the default.
[general]
unix = $tmp/two.sock
default-export = big

[export small]
description = a small scratch disk
size = 1M

[export big]
description = the big one
read-only = true
size = 4M
EOF

# Daemon mode on the file's socket: every export, its size and description.
t "$ramdisk" --config "$tmp/two.conf" --pidfile "$tmp/two.pid"
pids+=("$(cat "$tmp/two.pid")")
sock=$tmp/two.sock
list=$(t nbdinfo --list "nbd+unix:///?socket=$sock")
for want in 'export="small":' 'description: a small scratch disk' 'export="big":' 'description: the big one'; do
        grep -qF "$want" <<<"$list" || fail "nbdinfo --list does not show '$want': $list"
done
[ "$(t nbdinfo --size "nbd+unix:///small?socket=$sock")" = 1048576 ] || fail "small is not 1 MiB"
[ "$(t nbdinfo --size "nbd+unix:///big?socket=$sock")" = 4194304 ] || fail "big is not 4 MiB"
[ "$(t nbdinfo --size "nbd+unix:///?socket=$sock")" = 4194304 ] || fail "the empty name does not get default-export"

# The read-only export is advertised so and refuses writes; the other takes them.
t nbdinfo --json "nbd+unix:///big?socket=$sock" | grep -q '"is_read_only": true' || fail "big is not read-only"
t nbdinfo --json "nbd+unix:///small?socket=$sock" | grep -q '"is_read_only": false' || fail "small is read-only"
if command -v qemu-io >/dev/null; then
        write=(qemu-io -f raw -c "write -P 0x55 0 512")
        out=$(t "${write[@]}" "nbd+unix:///big?socket=$sock" 2>&1) && fail "qemu-io wrote to the read-only export: $out"
        t "${write[@]}" "nbd+unix:///small?socket=$sock" >/dev/null || fail "qemu-io could not write to small"
fi
kill "$(cat "$tmp/two.pid")"

# The first section is the default without default-export; the command line's
# options win over [general], and its settings are the default export's.
sed -e '/default-export/d' -e 's/two.sock/file.sock/' "$tmp/two.conf" >"$tmp/first.conf"
out=$(t "$ramdisk" --config "$tmp/first.conf" -U "$tmp/cli.sock" size=2M \
        --run 'echo "$exportname $unixsocket"; nbdinfo --size "$uri"; nbdinfo --size "nbd+unix:///big?socket=$unixsocket"')
[ "$out" = "small $tmp/cli.sock"$'\n'"2097152"$'\n'"4194304" ] || fail "-U, size= and the first section: $out"
[ ! -e "$tmp/file.sock" ] || fail "the file's unix= was used although -U was given"
json=$(t "$ramdisk" --config "$tmp/first.conf" -r --run 'nbdinfo --json "nbd+unix:///small?socket=$unixsocket"')
grep -q '"is_read_only": true' <<<"$json" || fail "-r does not make every export read-only"

# The server-wide TLS keys in [general] (when nbdsdk has TLS): clients must use TLS.
if "$ramdisk" --help | grep -q '^  tls='; then
        echo "alice:00112233445566778899aabbccddeeff" >"$tmp/keys.psk"
        printf '[general]\ntls = require\ntls-psk = %s\n[export]\nsize = 1M\n' "$tmp/keys.psk" >"$tmp/tls.conf"
        out=$(t "$ramdisk" --config "$tmp/tls.conf" -U - --run '
                echo "$uri"
                nbdinfo --size "nbds+unix://alice@/?socket=$unixsocket&tls-psk-file='"$tmp/keys.psk"'"
                nbdinfo --size "nbd+unix:///?socket=$unixsocket" 2>/dev/null || echo refused') ||
                fail "[general] TLS keys: $out"
        [[ $out == nbds+unix:///\?socket=*$'\n'1048576$'\n'refused ]] ||
                fail "[general] tls=require: a TLS client served, a plain one refused, an nbds URI: $out"
        printf '[general]\ntls = maybe\n' >"$tmp/tls-bad.conf"
        err=$(t "$ramdisk" -f -U "$tmp/never.sock" --config "$tmp/tls-bad.conf" 2>&1) && fail "tls = maybe was accepted"
        grep -qF "$tmp/tls-bad.conf:2: key tls: invalid value 'maybe'" <<<"$err" || fail "tls = maybe: $err"
fi

# config_complete runs for every export, with that export's settings.
printf '[export a]\nsize=1M\n[export b]\ndescription=no size\n' >"$tmp/nosize.conf"
err=$(t "$ramdisk" -f -U "$tmp/never.sock" --config "$tmp/nosize.conf" 2>&1) && fail "export b without a size was served"
grep -q "invalid settings for export 'b'" <<<"$err" || fail "no message about export b: $err"

# bad EXPECTED-TEXT FILE-CONTENTS [ARGS...]: exit status 1 and one line on stderr
# naming the file, the line and what is wrong.
bad() {
        local want=$1 err rc=0
        printf '%s\n' "$2" >"$tmp/bad.conf"
        shift 2
        err=$(t "$ramdisk" -f -U "$tmp/never.sock" --config "$tmp/bad.conf" "$@" 2>&1 >/dev/null) || rc=$?
        [ $rc -eq 1 ] || fail "exited $rc, not 1, for '$want' ($err)"
        [ "$(wc -l <<<"$err")" -eq 1 ] || fail "more than one line for '$want': $err"
        [[ $err == "ramdisk: "*"$want"* ]] || fail "said '$err', expected '$want'"
}
f=$tmp/bad.conf
bad "$f:3: Key file contains line" $'[export a]\nsize=1M\nnot a key or group'
bad "$f:1: Key file does not start with a group" $'size=1M'
bad "$f:3: unknown group [disk] (expected [general] or [export NAME])" $'[export a]\nsize=1M\n[disk]'
bad "$f:3: key colour: unknown setting" $'[export a]\nsize=1M\ncolour=blue'
bad "$f:2: key size: invalid value '1X' (Invalid argument)" $'[export a]\nsize=1X'
bad "$f:4: [export a] appears twice (first on line 1)" $'[export a]\nsize=1M\n\n[export a]\nsize=2M'
bad "$f:3: key size: given twice in [export a] (first on line 2)" $'[export a]\nsize=1M\nsize=2M'
bad "$f:2: [export]: the empty name is the default export's" $'[export a]\n[export]\nsize=1M'
bad "$f:3: key read-only: invalid value 'perhaps' (true or false)" $'[export a]\nsize=1M\nread-only=perhaps'
bad "$f:2: key port: invalid value '99999' (a port number from 0 to 65535)" $'[general]\nport=99999'
bad "$f:2: key threads: invalid value 'many' (a number of threads from 0 to 1024)" $'[general]\nthreads=many'
bad "$f:2: key verbose: invalid value 'yes' (true or false)" $'[general]\nverbose=yes'
bad "$f:2: key export-name: unknown setting in [general]" $'[general]\nexport-name=x'
bad "$f:2: key default-export: there is no [export c]" $'[general]\ndefault-export=c\n[export a]\nsize=1M'
bad "$tmp/none.conf: cannot open it: No such file or directory" "" --config "$tmp/none.conf"
bad "-e and -D cannot be combined with --config" $'[export a]\nsize=1M' -e a
echo "ok: --config"
