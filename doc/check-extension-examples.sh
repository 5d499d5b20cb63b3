#!/usr/bin/env bash
# The examples of nbdsdk-extensions(7) are whole programs: extract each (the
# first verbatim block after a "=head2 Example: ..." heading, whose first line
# is "/* NAME.c: ..."), compile and link it against the just-built library
# with -Werror, then run them with real clients (nbdinfo, nbdsh; a few lines
# of Python for the private option and command, which no client sends) and
# check what they do.
#
# Usage: check-extension-examples.sh INCLUDE_DIR LIB_DIR POD [SANITIZERS]
# (SANITIZERS: the build's b_sanitize value, which the programs must match).
# The --run commands are for the server's shell: $uri is not ours to expand.
# shellcheck disable=SC2016
set -euo pipefail

if [[ $# -lt 3 ]]; then
        echo "usage: $0 INCLUDE_DIR LIB_DIR POD [SANITIZERS]" >&2
        exit 2
fi
include_dir=$(cd "$1" && pwd)
lib_dir=$(cd "$2" && pwd)
pod=$3
cflags=(-std=gnu11 -Wall -Wextra -Wno-unused-parameter -Werror -I"$include_dir")
if [[ ${4:-none} != none ]]; then
        cflags+=(-fsanitize="$4")
fi
# Debian's python3 has the libnbd module that nbdsh uses.
export PATH=/usr/bin:$PATH

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
t() { timeout 30 "$@"; }

# Extract: writes DIR/NAME.c for each example and prints NAME.
perl -e '
        my $dir = $ARGV[1];
        open my $in, "<", $ARGV[0] or die "$ARGV[0]: $!\n";
        my ($state, @code) = ("");
        my $flush = sub {
                pop @code while @code && $code[-1] =~ /^\s*$/;
                my ($name) = ($code[0] // "") =~ m{^/\* ([a-z][a-z0-9_-]*)\.c: };
                die "an example does not begin with /* NAME.c: ...\n" unless $name;
                die "two examples are called $name.c\n" if -e "$dir/$name.c";
                open my $out, ">", "$dir/$name.c" or die "$dir/$name.c: $!\n";
                print $out "$_\n" for @code;
                print "$name\n";
                @code = ();
        };
        while (<$in>) {
                chomp;
                if ($state eq "code" && /^\S/) { $flush->(); $state = ""; }
                if (/^=head\d\s+Example:/) { $state = "heading"; }
                elsif (/^=/) { $state = ""; }
                elsif ($state eq "heading" && /^\s+\S/) { $state = "code"; }
                push @code, s/^ //r if $state eq "code";
        }
        $flush->() if $state eq "code";
' "$pod" "$tmp" >"$tmp/names" || fail "cannot extract the examples of $pod"
mapfile -t names <"$tmp/names"

want=(motd exports listing checksum dirty stages scramble snapshot audit)
for n in "${want[@]}"; do
        [[ " ${names[*]} " == *" $n "* ]] || fail "no example $n.c in $pod (found: ${names[*]})"
done

for n in "${names[@]}"; do
        cc "${cflags[@]}" "$tmp/$n.c" -o "$tmp/$n" -L"$lib_dir" -Wl,-rpath,"$lib_dir" -lnbdsdk -pthread ||
                fail "example $n.c does not build"
done
echo "ok: ${#names[@]} examples build: ${names[*]}"

for tool in nbdinfo nbdsh python3; do
        command -v "$tool" >/dev/null || { echo "SKIP: $tool is missing; the examples were not run"; exit 77; }
done
python3 -c 'import nbd' 2>/dev/null || { echo "SKIP: python3-libnbd is missing; the examples were not run"; exit 77; }
cd "$tmp"

# Config keys: --help, the command line, a --config file, a bad value.
out=$(t ./motd --help)
grep -q '^ *motd=TEXT' <<<"$out" || fail "motd: --help does not list motd=TEXT: $out"
out=$(t ./motd motd='scratch space' --run 'nbdinfo "$uri"')
grep -q 'description: scratch space' <<<"$out" || fail "motd: the command line's setting: $out"
printf '[export disk]\nmotd = from the file\n' >motd.conf
out=$(t ./motd --config motd.conf --run 'nbdinfo --list "$uri"')
grep -q 'export="disk"' <<<"$out" || fail "motd: the file's export: $out"
grep -q 'description: from the file' <<<"$out" || fail "motd: the file's setting: $out"
if out=$(t ./motd motd="$(printf '%0300d' 0)" 2>&1); then
        fail "motd: an over-long motd= was accepted"
fi
grep -q 'over 200 bytes' <<<"$out" || fail "motd: no message for an over-long value: $out"

# Several exports from a --config file, each with its own size.
printf '[export small]\nsize = 1M\n\n[export big]\nsize = 2M\n' >ram.conf
out=$(t ./exports --config ram.conf --run \
        'nbdinfo --size "nbd+unix:///big?socket=$unixsocket"; nbdinfo --size "$uri"')
[[ $out == $'2097152\n1048576' ]] || fail "exports: sizes of big and the default export: $out"
if t ./exports --run true 2>/dev/null; then
        fail "exports: an export without size= was accepted"
fi

# A replaced NBD_OPT_LIST answered from a thread.
out=$(t ./listing -e disk --run 'nbdinfo --list "$uri"')
grep -q 'export="disk"' <<<"$out" || fail "listing: nbdinfo --list showed: $out"
grep -q 'description: listed by a helper thread' <<<"$out" || fail "listing: nbdinfo --list showed: $out"

# The private option and command, spoken by hand: refused without the option,
# a checksum of what was written with it, EINVAL out of range.
cat >client.py <<'EOF'
import socket, struct, sys

def recv(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            sys.exit("the server closed the connection")
        b += c
    return b

def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)
    while True:
        magic, o, rtype, length = struct.unpack(">QIII", recv(s, 20))
        assert magic == 0x3e889045565a9 and o == opt, "bad option reply"
        recv(s, length)
        if rtype == 1 or rtype & 0x80000000:
            return rtype

def connect(path, negotiate):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    magic, opts, flags = struct.unpack(">QQH", recv(s, 18))
    assert magic == 0x4e42444d41474943 and opts == 0x49484156454F5054
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    if negotiate:
        assert option(s, 0x4e530001) == 1, "X_CHECKSUM was refused"
    assert option(s, 7, struct.pack(">IH", 0, 0)) == 1, "GO was refused"
    return s

def request(s, cmd, offset, length, data=b"", reply=0):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, cmd, 1, offset, length) + data)
    magic, error, handle = struct.unpack(">IIQ", recv(s, 16))
    assert magic == 0x67446698 and handle == 1, "bad reply"
    return error, recv(s, reply) if error == 0 else b""

s = connect(sys.argv[1], False)
assert request(s, 0x4e53, 0, 512)[0] == 22, "the command worked without the option"
s = connect(sys.argv[1], True)
assert request(s, 1, 4096, 3, b"abc") == (0, b""), "the write failed"
error, data = request(s, 0x4e53, 4096, 4, reply=4)
want = 0
for c in b"abc\0":
    want = (want * 31 + c) & 0xffffffff
assert error == 0 and data == struct.pack(">I", want), (error, data, want)
assert request(s, 0x4e53, 1 << 20, 512)[0] == 22, "out of range, not EINVAL"
print("ok")
EOF
out=$(t ./checksum --run 'python3 client.py "$unixsocket"' 2>&1) || fail "checksum: $out"
[[ $out == ok ]] || fail "checksum: $out"

# The metadata context, as nbdinfo --map shows it after a write.
out=$(t ./dirty --run 'nbdsh -u "$uri" -c "h.pwrite(b\"x\" * 512, 65536)" &&
                       nbdinfo --map=x-myext:dirty "$uri"')
[[ $(awk '{print $1, $2, $3}' <<<"$out") == $'0 65536 0\n65536 65536 1\n131072 917504 0' ]] ||
        fail "dirty: nbdinfo --map=x-myext:dirty showed: $out"

# Stages: the chain with and without unsafe=on, the FUA write through the
# deferring stage, and the flush answered by a stage or by the backend.
io='nbdsh -u "$uri" -c "h.pwrite(bytes(512), 0, nbd.CMD_FLAG_FUA)" -c "h.flush()"'
t ./stages unsafe=on --run "$io" 2>err || fail "stages unsafe=on: $(cat err)"
[[ $(cat err) == $'command 1: 0 [before_data: fua-wait, unsafe; after_reply: log]\ncommand 3: 0 [before_data: fua-wait, unsafe; after_reply: log]' ]] ||
        fail "stages unsafe=on printed: $(cat err)"
t ./stages --run "$io" 2>err || fail "stages: $(cat err)"
[[ $(cat err) == $'command 1: 0 [before_data: fua-wait; after_reply: log]\nbackend: flush\ncommand 3: 0 [before_data: fua-wait; after_reply: log]' ]] ||
        fail "stages printed: $(cat err)"

# The layer, alone and above cow= with stats=.
cat >scramble.py <<'EOF'
import nbd, sys
h = nbd.NBD()
h.connect_uri(sys.argv[1])
assert h.pread(4, 0) == b"\x55" * 4, "unwritten bytes are not 0x55"
h.pwrite(b"hello", 0)
assert h.pread(5, 0) == b"hello", "a write does not read back"
h.zero(4096, 4096)
assert h.pread(4096, 4096) == bytes(4096), "zeroes do not read back"
assert not h.can_trim() and h.can_zero()
EOF
t ./scramble --run 'python3 scramble.py "$uri"' || fail "scramble"
t ./scramble cow=ram stats=- --run 'python3 scramble.py "$uri"' 2>err || fail "scramble cow=ram: $(cat err)"
grep -Eq '^write +1 +0 +5 ' err || fail "scramble: stats=- did not count one write: $(cat err)"

# Native snapshots: without cow= a second connection sees the first one's
# write; with cow=ram it does not (the cow layer's overlay would be shared).
io='nbdsh -u "$uri" -c "h.pwrite(b\"x\", 0)" && nbdsh -u "$uri" -c "print(h.pread(1, 0))"'
[[ $(t ./snapshot --run "$io") == "bytearray(b'x')" ]] || fail "snapshot: the write is not shared without cow="
[[ $(t ./snapshot cow=ram --run "$io") == "bytearray(b'\\x00')" ]] ||
        fail "snapshot: with cow=ram a connection saw another's write"

# Slots: audit is on by default, audit=off drops its stage, audit=on adds it again.
io='nbdsh -u "$uri" -c "h.pread(512, 4096)"'
for args in "" "audit=off" "audit=off audit=on"; do
        # shellcheck disable=SC2086
        t ./audit $args --run "$io" 2>err || fail "audit $args: $(cat err)"
        if [[ $args == audit=off ]]; then
                ! grep -q '^audit: ' err || fail "audit=off still audits: $(cat err)"
        else
                grep -q '^audit: command 0, 512 bytes at 4096$' err || fail "audit $args printed: $(cat err)"
        fi
done

echo "ok: the examples of nbdsdk-extensions(7) build and do what the page says"
