"""nbdsh (libnbd's Python bindings) checks for the libnbd group of nbdsdk-check.

Run by libnbd.sh with Debian's python3 (the one that can import nbd). Prints one
"RESULT <status> nbdsh <check> [note]" line per check and exits 0 once every check ran.
Strict mode is relaxed so that libnbd sends requests a careful client never would;
the spec's answer to each is cited in the failure note ("proto.md" = the NBD spec).
"""

import os
import sys

import nbd

URI = os.environ["NBDSDK_URI"]
READ_ONLY = os.environ["NBDSDK_READ_ONLY"] == "1"

KIB = 1024
# The scratch layout every writing check uses, at the start of the export:
# [0, 64K) data A | [64K, 192K) zeroes | [192K, 256K) data B
DATA_A = bytes((i * 7 + 1) % 251 or 1 for i in range(64 * KIB))
DATA_B = bytes((i * 13 + 5) % 241 or 3 for i in range(64 * KIB))
UNKNOWN_FLAG = 0x80  # no NBD_CMD_FLAG_* has this bit


class Fail(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Fail(message)


def connect(strict=True, meta=True):
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(URI)
    if not strict:
        h.set_strict_mode(0)
    return h


def expect_error(what, allowed, call, *args, **kwargs):
    """CALL must fail with one of the errno names in ALLOWED."""
    try:
        call(*args, **kwargs)
    except nbd.Error as e:
        expect(e.errno in allowed,
               f"{what}: server answered {e.errno}, expected {'/'.join(allowed)}")
        return
    raise Fail(f"{what}: server answered success, expected {'/'.join(allowed)}")


def write_layout(h):
    """Write the scratch layout; zeroes with WRITE_ZEROES when advertised. The flush
    makes it visible to the checks' second connections even without multi-conn."""
    h.pwrite(DATA_A, 0)
    if h.can_zero():
        h.zero(128 * KIB, 64 * KIB)
    else:
        h.pwrite(bytes(128 * KIB), 64 * KIB)
    h.pwrite(DATA_B, 192 * KIB)
    if h.can_flush():
        h.flush()


def layout_bytes():
    return DATA_A + bytes(128 * KIB) + DATA_B


def expect_usable(h, what):
    """After a refused request the connection must still serve a normal read."""
    try:
        got = h.pread(64 * KIB, 0)
    except nbd.Error as e:
        raise Fail(f"after {what}: the next read failed ({e.errno}): "
                   "the connection must stay usable")
    if not READ_ONLY:
        expect(got == DATA_A, f"after {what}: the next read returned wrong data")


CHECKS = []


def check(applies=lambda h: True):
    """Register a check; APPLIES(h) says whether the server's advertisement makes it
    meaningful (a check that does not apply is not reported at all)."""
    def register(function):
        CHECKS.append((function.__name__.replace("_", "-"), applies, function))
        return function
    return register


def min_block(h):
    return max(h.get_block_size(nbd.SIZE_MINIMUM), 1)


@check()
def advertised_flags_consistent(h):
    expect(h.get_protocol() == "newstyle-fixed",
           f"protocol {h.get_protocol()}: fixed newstyle is a MUST (proto.md Compatibility)")
    expect(h.is_read_only() == READ_ONLY,
           f"READ_ONLY flag is {h.is_read_only()}, expected {READ_ONLY}")
    expect(not h.can_fast_zero() or h.can_zero(),
           "SEND_FAST_ZERO without SEND_WRITE_ZEROES (proto.md: MUST be 0)")
    expect(not h.can_df() or h.get_structured_replies_negotiated(),
           "SEND_DF without structured replies (proto.md: MUST be clear)")
    minimum = h.get_block_size(nbd.SIZE_MINIMUM)
    preferred = h.get_block_size(nbd.SIZE_PREFERRED)
    maximum = h.get_block_size(nbd.SIZE_MAXIMUM)
    if minimum:
        power_of_2 = lambda n: n > 0 and n & (n - 1) == 0
        expect(power_of_2(minimum) and minimum <= 64 * KIB,
               f"minimum block size {minimum}: must be a power of 2 <= 64K")
        expect(power_of_2(preferred) and preferred >= max(minimum, 512),
               f"preferred block size {preferred}: must be a power of 2 >= max(min, 512)")
        expect(maximum >= preferred, f"maximum payload {maximum} < preferred {preferred}")
        expect(h.get_size() % minimum == 0,
               f"export size {h.get_size()} is not a multiple of the minimum {minimum}")


@check(lambda h: not READ_ONLY)
def advertised_commands_work(h):
    expect(h.pread(256 * KIB, 0) == layout_bytes(), "read after write returned wrong data")
    if h.can_fua():
        h.pwrite(DATA_B, 256 * KIB, nbd.CMD_FLAG_FUA)
        expect(h.pread(64 * KIB, 256 * KIB) == DATA_B, "read after FUA write: wrong data")
    if h.can_flush():
        h.flush()
    if h.can_zero():
        h.zero(64 * KIB, 256 * KIB, nbd.CMD_FLAG_NO_HOLE)
        expect(h.pread(64 * KIB, 256 * KIB) == bytes(64 * KIB),
               "WRITE_ZEROES(NO_HOLE) range does not read as zeroes")
    if h.can_trim():
        h.trim(64 * KIB, 256 * KIB)
    if h.can_cache():
        h.cache(256 * KIB, 0)
    expect(h.pread(256 * KIB, 0) == layout_bytes(),
           "data outside the zeroed/trimmed range changed")


@check(lambda h: READ_ONLY)
def read_only_refuses_writes(h):
    h = connect(strict=False)
    expect_error("WRITE on a read-only export", ["EPERM"], h.pwrite, bytes(512), 0)
    expect_error("WRITE_ZEROES on a read-only export", ["EPERM", "EINVAL"], h.zero, 512, 0)
    expect_error("TRIM on a read-only export", ["EPERM", "EINVAL"], h.trim, 512, 0)
    expect_usable(h, "refused writes")


def straddling_end(h):
    """A request of two blocks whose second block lies past the end of the export."""
    block = min_block(h)
    return 2 * block, h.get_size() - block


@check()
def bad_read_past_end(h):
    length, offset = straddling_end(h)
    h = connect(strict=False)
    expect_error("READ past the end", ["EINVAL"], h.pread, length, offset)
    expect_usable(h, "READ past the end")
    expect_error("READ starting past the end", ["EINVAL"], h.pread, length, offset + length)
    expect_usable(h, "READ starting past the end")


@check(lambda h: not READ_ONLY)
def bad_write_past_end(h):
    length, offset = straddling_end(h)
    h = connect(strict=False)
    expect_error("WRITE past the end (proto.md: SHOULD be ENOSPC)", ["ENOSPC"],
                 h.pwrite, bytes(length), offset)
    expect_usable(h, "WRITE past the end")


@check(lambda h: h.can_zero() and not READ_ONLY)
def bad_zero_past_end(h):
    length, offset = straddling_end(h)
    h = connect(strict=False)
    expect_error("WRITE_ZEROES past the end (proto.md: SHOULD be ENOSPC)", ["ENOSPC"],
                 h.zero, length, offset)
    expect_usable(h, "WRITE_ZEROES past the end")


@check(lambda h: h.can_trim() and not READ_ONLY)
def bad_trim_past_end(h):
    length, offset = straddling_end(h)
    h = connect(strict=False)
    expect_error("TRIM past the end", ["EINVAL"], h.trim, length, offset)
    expect_usable(h, "TRIM past the end")


@check(lambda h: h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))
def bad_block_status_past_end(h):
    length, offset = straddling_end(h)
    h = connect(strict=False)
    expect_error("BLOCK_STATUS starting past the end (proto.md: SHOULD be EINVAL)",
                 ["EINVAL"], h.block_status, length, offset + length, lambda *a: 0)
    expect_usable(h, "BLOCK_STATUS past the end")


@check(lambda h: min_block(h) > 1)
def bad_misaligned(h):
    block = min_block(h)
    h = connect(strict=False)
    expect_error(f"READ at offset {block // 2} (minimum block size {block})", ["EINVAL"],
                 h.pread, block, block // 2)
    expect_usable(h, "misaligned READ")
    expect_error(f"READ of length {block // 2} (minimum block size {block})", ["EINVAL"],
                 h.pread, block // 2, 0)
    expect_usable(h, "misaligned READ length")
    if not READ_ONLY:
        expect_error(f"WRITE at offset {block // 2} (minimum block size {block})",
                     ["EINVAL"], h.pwrite, bytes(block), block // 2)
        expect_usable(h, "misaligned WRITE")


@check()
def bad_flags(h):
    can_fua, can_df, can_fast_zero = h.can_fua(), h.can_df(), h.can_fast_zero()
    h = connect(strict=False)
    rule = "proto.md: an unknown or inapplicable flag SHOULD get EINVAL"
    expect_error(f"READ with unknown flag 0x{UNKNOWN_FLAG:x} ({rule})", ["EINVAL"],
                 h.pread, 512, 0, UNKNOWN_FLAG)
    expect_usable(h, "unknown flag")
    expect_error(f"READ with NO_HOLE ({rule})", ["EINVAL"],
                 h.pread, 512, 0, nbd.CMD_FLAG_NO_HOLE)
    expect_usable(h, "READ with NO_HOLE")
    expect_error(f"READ with REQ_ONE ({rule})", ["EINVAL"],
                 h.pread, 512, 0, nbd.CMD_FLAG_REQ_ONE)
    expect_usable(h, "READ with REQ_ONE")
    if not can_df:
        expect_error("READ with DF, not advertised", ["EINVAL"],
                     h.pread, 512, 0, nbd.CMD_FLAG_DF)
        expect_usable(h, "READ with unadvertised DF")
    if not READ_ONLY:
        if not can_fua:
            expect_error("WRITE with FUA, not advertised", ["EINVAL"],
                         h.pwrite, bytes(512), 0, nbd.CMD_FLAG_FUA)
        if not can_fast_zero:
            expect_error("WRITE_ZEROES with FAST_ZERO, not advertised (proto.md: SHOULD "
                         "be EINVAL)", ["EINVAL"], h.zero, 512, 0, nbd.CMD_FLAG_FAST_ZERO)
        h.pwrite(DATA_A, 0)
        expect_usable(h, "unadvertised flags")


@check(lambda h: not (h.can_flush() and h.can_trim() and h.can_zero() and h.can_cache()))
def bad_unadvertised_commands(h):
    advertised = {"FLUSH": h.can_flush(), "TRIM": h.can_trim(),
                  "WRITE_ZEROES": h.can_zero(), "CACHE": h.can_cache()}
    h = connect(strict=False)
    calls = {"FLUSH": lambda: h.flush(), "TRIM": lambda: h.trim(512, 0),
             "WRITE_ZEROES": lambda: h.zero(512, 0), "CACHE": lambda: h.cache(512, 0)}
    for name, call in calls.items():
        if advertised[name] or (READ_ONLY and name in ("TRIM", "WRITE_ZEROES")):
            continue
        expect_error(f"{name}, not advertised", ["EINVAL"], call)
        expect_usable(h, f"unadvertised {name}")


@check(lambda h: h.get_structured_replies_negotiated())
def bad_block_status_without_context(h):
    h = connect(strict=False, meta=False)
    expect_error("BLOCK_STATUS with no meta context negotiated", ["EINVAL"],
                 h.block_status, 512, 0, lambda *a: 0)
    expect_usable(h, "BLOCK_STATUS without a context")


@check(lambda h: 0 < h.get_block_size(nbd.SIZE_MAXIMUM) < min(h.get_size(), 64 << 20))
def bad_oversized(h):
    maximum = h.get_block_size(nbd.SIZE_MAXIMUM)
    length = maximum + min_block(h)
    h = connect(strict=False)
    expect_error(f"READ of {length} bytes, over the advertised maximum {maximum}",
                 ["EINVAL", "EOVERFLOW"], h.pread, length, 0)
    expect_usable(h, "oversized READ")


@check()
def zero_length_requests(h):
    """Length 0 is unspecified by the spec, but must not break the connection."""
    h = connect(strict=False)
    calls = [("READ", lambda: h.pread(0, 0))]
    if not READ_ONLY:
        calls.append(("WRITE", lambda: h.pwrite(b"", 0)))
        if h.can_trim():
            calls.append(("TRIM", lambda: h.trim(0, 0)))
        if h.can_zero():
            calls.append(("WRITE_ZEROES", lambda: h.zero(0, 0)))
    for name, call in calls:
        try:
            call()
        except nbd.Error as e:
            print(f"--- zero-length {name}: {e.errno}", file=sys.stderr)
        expect_usable(h, f"a zero-length {name}")


def largest_request(h):
    """The largest payload the server must take: its advertised maximum, else the
    spec's 32 MiB, never more than the export or libnbd's 64 MiB."""
    maximum = h.get_block_size(nbd.SIZE_MAXIMUM) or 32 << 20
    return min(maximum, 32 << 20, h.get_size() - h.get_size() % min_block(h))


@check(lambda h: not READ_ONLY)
def max_payload(h):
    length = largest_request(h)
    payload = (bytes(range(1, 256)) * (length // 255 + 1))[:length]
    h.pwrite(payload, 0)
    expect(h.pread(length, 0) == payload,
           f"a {length}-byte write then read (the largest payload the server must accept) "
           "did not round-trip")


@check(lambda h: (h.can_zero() or h.can_trim()) and not READ_ONLY)
def whole_export_zero_and_trim(h):
    """Clients send WRITE_ZEROES and TRIM far larger than the maximum payload (qemu-img
    and nbdcopy do); the spec allows EINVAL/EOVERFLOW but not a disconnect."""
    length = min(h.get_size(), 0xFFFFFFFF) // min_block(h) * min_block(h)
    h = connect(strict=False)
    for name, call in (("WRITE_ZEROES", h.zero), ("TRIM", h.trim)):
        if not (h.can_zero() if name == "WRITE_ZEROES" else h.can_trim()):
            continue
        try:
            call(length, 0)
            if name == "WRITE_ZEROES":
                expect(h.pread(64 * KIB, length - 64 * KIB) == bytes(64 * KIB),
                       f"after a {length}-byte WRITE_ZEROES the end does not read as zeroes")
        except nbd.Error as e:
            expect(e.errno in ("EINVAL", "EOVERFLOW"),
                   f"a {length}-byte {name} failed with {e.errno}; expected success, or "
                   "EINVAL/EOVERFLOW (proto.md: MAY for over-long payload-less requests)")
        h.pwrite(DATA_A, 0)
        expect_usable(h, f"a {length}-byte {name}")


@check(lambda h: not READ_ONLY)
def pipelined_writes(h):
    """64 writes of 1 MiB in flight at once: the server may apply back-pressure but
    must neither deadlock nor lose data."""
    count, length = 64, min(1 << 20, largest_request(h))
    area = count * length
    if area > h.get_size():
        count = h.get_size() // length
    buffers = [nbd.Buffer.from_bytearray(bytearray([i % 251 + 1]) * length)
               for i in range(count)]
    cookies = [h.aio_pwrite(buffers[i], i * length) for i in range(count)]
    while h.aio_in_flight() > 0:
        h.poll(-1)
    for cookie in cookies:
        h.aio_command_completed(cookie)  # raises if the write failed
    for i in range(count):
        got = h.pread(length, i * length)
        expect(got == bytes([i % 251 + 1]) * length,
               f"pipelined write #{i} at {i * length} did not land")


def read_chunks(h, count, offset, flags=0):
    chunks = []

    def chunk(subbuf, chunk_offset, status, error):
        chunks.append((chunk_offset, len(subbuf), status, bytes(subbuf)))
        return 0
    data = h.pread_structured(count, offset, chunk, flags)
    return data, sorted(chunks)


@check(lambda h: h.get_structured_replies_negotiated() and not READ_ONLY)
def structured_read(h):
    data, chunks = read_chunks(h, 256 * KIB, 0)
    expect(data == layout_bytes(), "structured read returned wrong data")
    position = 0
    for chunk_offset, length, status, content in chunks:
        expect(status in (nbd.READ_DATA, nbd.READ_HOLE), f"unexpected chunk status {status}")
        expect(chunk_offset == position,
               f"chunks leave a gap or overlap at {position} (next chunk at {chunk_offset}); "
               "proto.md: content chunks MUST NOT overlap and MUST cover the range")
        expect(length > 0, f"empty chunk at {chunk_offset}")
        expect(content == layout_bytes()[chunk_offset:chunk_offset + length],
               f"chunk at {chunk_offset} (+{length}) carries wrong data")
        position += length
    expect(position == 256 * KIB, f"chunks end at {position}, the read was 256K")


@check(lambda h: h.get_structured_replies_negotiated() and not READ_ONLY)
def read_holes(h):
    _, chunks = read_chunks(h, 256 * KIB, 0)
    holes = [(o, n) for o, n, status, _ in chunks if status == nbd.READ_HOLE]
    expect(any(o < 192 * KIB and o + n > 64 * KIB for o, n in holes),
           "the zeroed range [64K,192K) came back as data chunks, no OFFSET_HOLE "
           f"(chunks: {[(o, n, s) for o, n, s, _ in chunks]}); OFFSET_HOLE is optional in "
           "the spec, but nbdsdk servers send it for ranges the backend reports as zero")


@check(lambda h: h.can_df() and not READ_ONLY)
def df_read(h):
    data, chunks = read_chunks(h, 64 * KIB, 32 * KIB, nbd.CMD_FLAG_DF)
    expect(data == layout_bytes()[32 * KIB:96 * KIB], "DF read returned wrong data")
    expect(len(chunks) == 1,
           f"DF read of 64K over data+zeroes came in {len(chunks)} chunks "
           "(proto.md: DF means at most one content chunk, MUST for reads <= 64K)")
    expect(chunks[0][2] == nbd.READ_DATA and chunks[0][:2] == (32 * KIB, 64 * KIB),
           f"DF read chunk is {chunks[0][:3]}, expected one data chunk (32K, 64K)")


def extents_of(h, count, offset, flags=0):
    found = {}

    def extent(context, extent_offset, entries, error):
        found.setdefault(context, []).append(
            (extent_offset, list(zip(entries[0::2], entries[1::2]))))
        return 0
    h.block_status(count, offset, extent, flags)
    return found


@check(lambda h: h.can_meta_context(nbd.CONTEXT_BASE_ALLOCATION))
def block_status(h):
    found = extents_of(h, 256 * KIB, 0)
    calls = found.get(nbd.CONTEXT_BASE_ALLOCATION, [])
    expect(len(calls) == 1,
           f"{len(calls)} base:allocation chunks (proto.md: exactly one per context)")
    _, extents = calls[0]
    expect(extents, "no extents (proto.md: at least one)")
    expect(all(length > 0 for length, _ in extents), f"zero-length extent in {extents}")
    expect(sum(length for length, _ in extents[:-1]) < 256 * KIB,
           f"extents {extents} run past the request before the last one")
    position = 0
    for length, flags in extents:
        end = min(position + length, 256 * KIB)
        if flags & nbd.STATE_ZERO and position < end:
            got = h.pread(end - position, position)
            expect(got == bytes(end - position),
                   f"extent [{position},{end}) is flagged ZERO but does not read as zeroes")
        position += length
    single = extents_of(h, 256 * KIB, 0, nbd.CMD_FLAG_REQ_ONE)
    _, extents = single[nbd.CONTEXT_BASE_ALLOCATION][0]
    expect(len(extents) == 1 and extents[0][0] <= 256 * KIB,
           f"REQ_ONE answer {extents}: proto.md: exactly one extent, no longer than asked")


@check(lambda h: h.can_fast_zero() and not READ_ONLY)
def fast_zero(h):
    try:
        h.zero(64 * KIB, 0, nbd.CMD_FLAG_FAST_ZERO)
        expect(h.pread(64 * KIB, 0) == bytes(64 * KIB),
               "fast zero succeeded but the range does not read as zeroes")
    except nbd.Error as e:
        expect(e.errno == "ENOTSUP",
               f"fast zero failed with {e.errno}; proto.md: only ENOTSUP may refuse it")
        expect(h.pread(64 * KIB, 0) == DATA_A,
               "fast zero refused with ENOTSUP but the data changed (SHOULD NOT)")
    h.pwrite(DATA_A, 0)
    try:
        h.zero(64 * KIB, 0)
    except nbd.Error as e:
        raise Fail(f"WRITE_ZEROES without FAST_ZERO failed with {e.errno} (proto.md: "
                   "with SEND_FAST_ZERO advertised, a plain zero MUST NOT fail with ENOTSUP)")
    expect(h.pread(64 * KIB, 0) == bytes(64 * KIB), "zeroed range does not read as zeroes")


@check(lambda h: h.can_multi_conn() and not READ_ONLY)
def multi_conn_consistent(h):
    other = connect()
    h.pwrite(DATA_B, 0)
    if h.can_flush():
        h.flush()
    expect(other.pread(64 * KIB, 0) == DATA_B,
           "CAN_MULTI_CONN: a flushed write on one connection is not visible on another")
    other.pwrite(DATA_A, 0, nbd.CMD_FLAG_FUA if other.can_fua() else 0)
    expect(h.pread(64 * KIB, 0) == DATA_A,
           "CAN_MULTI_CONN: a FUA write on one connection is not visible on another")
    other.shutdown()


def main():
    h = connect()
    for name, applies, function in CHECKS:
        try:
            if not applies(h):
                print(f"--- {name}: not applicable to what the server advertises",
                      file=sys.stderr)
                continue
            if not READ_ONLY:
                write_layout(h)
            function(h)
            status, note = "pass", ""
        except Fail as e:
            status, note = "fail", str(e)
        except nbd.Error as e:
            status, note = "fail", f"unexpected error {e.errno}: {e.string}"
        print(f"RESULT {status} nbdsh {name}{' ' + note if note else ''}", flush=True)
        if status == "fail":
            try:  # a failed check may have broken the main connection
                h.pread(512, 0)
            except nbd.Error:
                h = connect()
    h.shutdown()


if __name__ == "__main__":
    main()
