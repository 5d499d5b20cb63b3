"""A raw-socket NBD client that checks the handshake rules other clients never test.

Run by protocol.sh; standard library only. Prints one "RESULT <status> raw <check> [note]"
line per check and exits 0 once every check ran. Each check opens its own connection.
"proto.md" in the notes is the NBD specification (doc/proto.md).
"""

import os
import socket
import struct
import sys
import urllib.parse

URI = os.environ["NBDSDK_URI"]
TIMEOUT = int(os.environ["NBDSDK_TIMEOUT"])

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
OPTION_REPLY_MAGIC = 0x0003E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
STRUCTURED_REPLY_MAGIC = 0x668E33EF

FLAG_FIXED_NEWSTYLE = 1 << 0
FLAG_NO_ZEROES = 1 << 1

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_STRUCTURED_REPLY, OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 8, 9, 10
OPT_EXTENDED_HEADERS = 11
OPT_UNKNOWN = 0x7F3A5C01  # not assigned by the spec

REP_ACK, REP_SERVER, REP_INFO, REP_META_CONTEXT = 1, 2, 3, 4
REP_ERR_UNSUP = 0x80000001
REP_ERR_POLICY = 0x80000002
REP_ERR_INVALID = 0x80000003
REP_ERR_UNKNOWN = 0x80000006
REP_ERR_TOO_BIG = 0x80000009
REP_NAMES = {1: "ACK", 2: "SERVER", 3: "INFO", 4: "META_CONTEXT",
             0x80000001: "ERR_UNSUP", 0x80000002: "ERR_POLICY",
             0x80000003: "ERR_INVALID", 0x80000004: "ERR_PLATFORM",
             0x80000005: "ERR_TLS_REQD", 0x80000006: "ERR_UNKNOWN",
             0x80000007: "ERR_SHUTDOWN", 0x80000008: "ERR_BLOCK_SIZE_REQD",
             0x80000009: "ERR_TOO_BIG"}

INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 0, 1, 2, 3

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_BLOCK_STATUS = 0, 1, 2, 3, 7
CMD_FLAG_PAYLOAD_LEN = 1 << 5
EXTENDED_REQUEST_MAGIC = 0x21E41C71
EXTENDED_REPLY_MAGIC = 0x6E8A278C
REPLY_FLAG_DONE = 1
CHUNK_NONE, CHUNK_OFFSET_DATA, CHUNK_OFFSET_HOLE, CHUNK_ERROR = 0, 1, 2, 0x8001
CHUNK_BLOCK_STATUS, CHUNK_BLOCK_STATUS_EXT = 5, 6
CMD_UNKNOWN = 0x3A  # not assigned by the spec
READ_LENGTH = 64 * 1024
EINVAL = 22


def rep_name(reply_type):
    return REP_NAMES.get(reply_type, f"0x{reply_type:x}")


class Fail(Exception):
    pass


class NotApplicable(Exception):
    """The server does not offer what the check is about; nothing is reported."""


class Closed(Exception):
    """The server closed the connection."""


def expect(condition, message):
    if not condition:
        raise Fail(message)


def parse_uri(uri):
    parts = urllib.parse.urlsplit(uri)
    export = urllib.parse.unquote(parts.path[1:]) if parts.path else ""
    query = urllib.parse.parse_qs(parts.query)
    if parts.scheme == "nbd+unix":
        return (socket.AF_UNIX, query["socket"][0]), export
    if parts.scheme == "nbd":
        return (socket.AF_INET6 if ":" in (parts.hostname or "") else socket.AF_INET,
                (parts.hostname, parts.port or 10809)), export
    raise SystemExit(f"protocol.py: unsupported URI scheme in {uri}")


ADDRESS, EXPORT = parse_uri(URI)
EXPORT_BYTES = EXPORT.encode()


class Connection:
    def __init__(self):
        family, address = ADDRESS
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(address)
        self.cookie = 0

    def close(self):
        self.sock.close()

    def recv_exact(self, n):
        data = b""
        while len(data) < n:
            try:
                part = self.sock.recv(n - len(data))
            except ConnectionResetError:
                part = b""
            if not part:
                raise Closed(f"server closed the connection ({len(data)} of {n} bytes read)")
            data += part
        return data

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            raise Closed("server closed the connection while we were sending")

    def greeting(self):
        magic, ihaveopt, flags = struct.unpack(">QQH", self.recv_exact(18))
        expect(magic == NBDMAGIC and ihaveopt == IHAVEOPT,
               f"greeting magic 0x{magic:x} 0x{ihaveopt:x}: not newstyle")
        return flags

    def start(self, client_flags=None):
        """Greeting and client flags; by default echo the flags we understand."""
        flags = self.greeting()
        if client_flags is None:
            client_flags = flags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
        self.send(struct.pack(">I", client_flags))
        return flags

    def send_option(self, option, data=b""):
        # One send: after an ABORT the server may close before a second one.
        self.send(struct.pack(">QII", IHAVEOPT, option, len(data)) + data)

    def read_reply(self):
        magic, option, reply_type, length = struct.unpack(">QIII", self.recv_exact(20))
        expect(magic == OPTION_REPLY_MAGIC, f"option reply magic 0x{magic:x}: stream out of sync")
        return option, reply_type, self.recv_exact(length)

    def option(self, option, data=b""):
        """Send one option; return its replies up to and including the final one."""
        self.send_option(option, data)
        return self.replies(option)

    def replies(self, option):
        replies = []
        while True:
            echoed, reply_type, data = self.read_reply()
            expect(echoed == option,
                   f"reply to option {option} names option {echoed} (proto.md: it echoes)")
            replies.append((reply_type, data))
            if reply_type == REP_ACK or reply_type & 0x80000000:
                return replies

    def expect_closed(self, what):
        """The server must drop the connection: EOF, not a reply."""
        try:
            data = self.sock.recv(1)
        except ConnectionResetError:
            return
        except socket.timeout:
            raise Fail(f"{what}: the connection stayed open for {TIMEOUT}s")
        expect(data == b"", f"{what}: the server answered instead of dropping the connection")

    def expect_eof(self, what):
        """The server must end the connection; an error reply first is tolerated."""
        try:
            while self.sock.recv(4096):
                pass
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise Fail(f"{what}: the connection stayed open for {TIMEOUT}s")

    def request(self, command, offset=0, length=0, flags=0, payload=b""):
        self.cookie += 1
        self.send(struct.pack(">IHHQQI", REQUEST_MAGIC, flags, command, self.cookie,
                              offset, length) + payload)
        return self.cookie

    def extended_request(self, command, offset=0, length=0, flags=0, payload=b""):
        self.cookie += 1
        self.send(struct.pack(">IHHQQQ", EXTENDED_REQUEST_MAGIC, flags, command, self.cookie,
                              offset, length) + payload)
        return self.cookie

    def chunks(self, cookie, extended=False, request_offset=0):
        """Read the structured (or extended) reply chunks of one request up to DONE;
        return [(type, payload)]."""
        chunks = []
        while True:
            if extended:
                magic, flags, chunk_type, got_cookie, offset, length = struct.unpack(
                    ">IHHQQQ", self.recv_exact(32))
                expect(magic == EXTENDED_REPLY_MAGIC,
                       f"reply magic 0x{magic:x}: with extended headers every reply MUST "
                       "be an extended reply chunk")
                expect(offset == request_offset,
                       f"extended reply offset {offset}, the request's was {request_offset} "
                       "(MUST be equal)")
            else:
                magic, flags, chunk_type, got_cookie, length = struct.unpack(
                    ">IHHQI", self.recv_exact(20))
                expect(magic == STRUCTURED_REPLY_MAGIC,
                       f"reply magic 0x{magic:x}: expected a structured reply chunk")
            expect(got_cookie == cookie, f"chunk cookie {got_cookie}, expected {cookie}")
            chunks.append((chunk_type, self.recv_exact(length)))
            if flags & REPLY_FLAG_DONE:
                return chunks

    def simple_reply(self, cookie, data_length):
        """Read a simple reply; return (error, data)."""
        magic, error, got_cookie = struct.unpack(">IIQ", self.recv_exact(16))
        expect(magic == SIMPLE_REPLY_MAGIC,
               f"reply magic 0x{magic:x}: without structured replies only simple replies "
               "are allowed")
        expect(got_cookie == cookie, f"reply cookie {got_cookie}, expected {cookie}")
        return error, (self.recv_exact(data_length) if error == 0 else b"")


def final_type(replies):
    return replies[-1][0]


def info_request(names=(INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE), export=EXPORT_BYTES):
    return (struct.pack(">I", len(export)) + export + struct.pack(">H", len(names)) +
            b"".join(struct.pack(">H", n) for n in names))


def infos_of(replies, what):
    """The NBD_REP_INFO payloads of an INFO/GO answer, by info type."""
    expect(final_type(replies) == REP_ACK,
           f"{what} answered {rep_name(final_type(replies))}, expected ACK")
    infos = {}
    for reply_type, data in replies[:-1]:
        expect(reply_type == REP_INFO, f"{what}: unexpected reply {rep_name(reply_type)}")
        expect(len(data) >= 2, f"{what}: INFO reply of {len(data)} bytes")
        (info_type,) = struct.unpack(">H", data[:2])
        infos[info_type] = data[2:]
    expect(INFO_EXPORT in infos,
           f"{what}: no NBD_INFO_EXPORT before ACK (proto.md: MUST be sent)")
    expect(len(infos[INFO_EXPORT]) == 10,
           f"{what}: NBD_INFO_EXPORT of {len(infos[INFO_EXPORT])} bytes, expected 10")
    if INFO_BLOCK_SIZE in infos:
        expect(len(infos[INFO_BLOCK_SIZE]) == 12,
               f"{what}: NBD_INFO_BLOCK_SIZE of {len(infos[INFO_BLOCK_SIZE])} bytes")
    return infos


def expect_in_sync(conn, what):
    """After a refused option, an ABORT must still be understood and ACKed."""
    try:
        replies = conn.option(OPT_ABORT)
    except Closed:
        raise Fail(f"after {what}: the server closed the connection instead of answering "
                   "the next option")
    expect(replies == [(REP_ACK, b"")],
           f"after {what}: ABORT got {[rep_name(t) for t, _ in replies]}, expected ACK")


def enter_transmission(conn):
    """GO into the export; return (size, transmission flags)."""
    infos = infos_of(conn.option(OPT_GO, info_request()), "GO")
    return struct.unpack(">QH", infos[INFO_EXPORT])


def read_works(conn, what):
    """64 KiB at offset 0 is aligned to any minimum block size the spec allows."""
    cookie = conn.request(CMD_READ, 0, READ_LENGTH)
    error, data = conn.simple_reply(cookie, READ_LENGTH)
    expect(error == 0, f"{what}: a {READ_LENGTH}-byte READ at 0 failed with error {error}")


CHECKS = []


def check(function):
    CHECKS.append((function.__name__.replace("_", "-"), function))
    return function


@check
def greeting(conn):
    flags = conn.greeting()
    expect(flags & FLAG_FIXED_NEWSTYLE,
           "handshake flags lack FIXED_NEWSTYLE (proto.md Compatibility: MUST)")
    expect(flags & ~(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES) == 0,
           f"handshake flags 0x{flags:x} set undefined bits")
    conn.send(struct.pack(">I", flags))
    expect_in_sync(conn, "the handshake")


@check
def abort_ack(conn):
    conn.start()
    replies = conn.option(OPT_ABORT)
    expect(replies == [(REP_ACK, b"")],
           f"ABORT got {[rep_name(t) for t, _ in replies]}: proto.md: the server MUST ACK")


@check
def unknown_option(conn):
    conn.start()
    replies = conn.option(OPT_UNKNOWN)
    expect(final_type(replies) == REP_ERR_UNSUP and len(replies) == 1,
           f"unknown option {OPT_UNKNOWN:#x} got {rep_name(final_type(replies))}: "
           "proto.md: ERR_UNSUP is a MUST")
    expect_in_sync(conn, "an unknown option")


@check
def unknown_option_with_data(conn):
    conn.start()
    replies = conn.option(OPT_UNKNOWN, bytes(range(256)) * 4)
    expect(final_type(replies) == REP_ERR_UNSUP,
           f"unknown option with 1024 bytes of data got {rep_name(final_type(replies))}, "
           "expected ERR_UNSUP")
    expect_in_sync(conn, "an unknown option with data")


@check
def info_then_go_agree(conn):
    conn.start()
    info = infos_of(conn.option(OPT_INFO, info_request()), "INFO")
    go = infos_of(conn.option(OPT_GO, info_request()), "GO")
    for info_type, name in ((INFO_EXPORT, "EXPORT"), (INFO_NAME, "NAME"),
                            (INFO_DESCRIPTION, "DESCRIPTION"), (INFO_BLOCK_SIZE, "BLOCK_SIZE")):
        expect(info.get(info_type) == go.get(info_type),
               f"NBD_INFO_{name}: INFO said {info.get(info_type)!r}, GO said "
               f"{go.get(info_type)!r} (proto.md: INFO then GO MUST agree)")
    read_works(conn, "after GO")
    conn.request(CMD_DISC)


@check
def list_exports(conn):
    conn.start()
    replies = conn.option(OPT_LIST)
    if final_type(replies) == REP_ERR_POLICY:
        return  # listing may be forbidden by policy
    expect(final_type(replies) == REP_ACK,
           f"LIST got {rep_name(final_type(replies))}, expected SERVER replies then ACK")
    names = []
    for reply_type, data in replies[:-1]:
        expect(reply_type == REP_SERVER, f"LIST: unexpected reply {rep_name(reply_type)}")
        (length,) = struct.unpack(">I", data[:4])
        expect(length <= len(data) - 4, f"LIST: name length {length} past the reply")
        names.append(data[4:4 + length])
    expect(EXPORT_BYTES in names, f"LIST does not name the export {EXPORT!r}: {names}")
    expect_in_sync(conn, "LIST")


@check
def list_with_data(conn):
    conn.start()
    replies = conn.option(OPT_LIST, b"junk")
    expect(final_type(replies) == REP_ERR_INVALID and len(replies) == 1,
           f"LIST with data got {[rep_name(t) for t, _ in replies]}: proto.md: SHOULD "
           "answer ERR_INVALID (and consume the data)")
    expect_in_sync(conn, "LIST with data")


@check
def structured_reply_with_data(conn):
    conn.start()
    replies = conn.option(OPT_STRUCTURED_REPLY, b"junk")
    expect(final_type(replies) == REP_ERR_INVALID,
           f"STRUCTURED_REPLY with data got {rep_name(final_type(replies))}, "
           "expected ERR_INVALID")
    expect_in_sync(conn, "STRUCTURED_REPLY with data")


@check
def info_name_past_payload(conn):
    conn.start()
    bad = struct.pack(">I", 1000) + b"x" * 10 + struct.pack(">H", 0)
    replies = conn.option(OPT_INFO, bad)
    expect(final_type(replies) == REP_ERR_INVALID and len(replies) == 1,
           f"INFO whose name length runs past the payload got "
           f"{[rep_name(t) for t, _ in replies]}, expected ERR_INVALID")
    expect_in_sync(conn, "a malformed INFO")


@check
def info_count_past_payload(conn):
    conn.start()
    bad = struct.pack(">I", len(EXPORT_BYTES)) + EXPORT_BYTES + struct.pack(">HH", 5, INFO_NAME)
    replies = conn.option(OPT_INFO, bad)
    expect(final_type(replies) == REP_ERR_INVALID and len(replies) == 1,
           f"INFO announcing 5 info requests but carrying 1 got "
           f"{[rep_name(t) for t, _ in replies]}, expected ERR_INVALID")
    expect_in_sync(conn, "a malformed INFO")


@check
def string_over_4096(conn):
    conn.start()
    replies = conn.option(OPT_INFO, info_request((), b"n" * 5000))
    expect(final_type(replies) & 0x80000000 and len(replies) == 1,
           f"INFO for a 5000-byte export name got {[rep_name(t) for t, _ in replies]}: "
           "proto.md: strings MUST be at most 4096 bytes, so it must be refused")
    expect_in_sync(conn, "a 5000-byte string")


def refused_or_dropped(conn, what, option, data):
    """A huge option payload: an error reply with the stream still in sync, or a hard
    disconnect (allowed for suspected DoS); then the server must still serve others."""
    try:
        conn.send_option(option, data)
        replies = conn.replies(option)
        expect(final_type(replies) & 0x80000000,
               f"{what} got {rep_name(final_type(replies))}, expected an error")
        expect_in_sync(conn, what)
    except Closed:
        pass
    other = Connection()
    try:
        other.start()
        expect_in_sync(other, f"{what} (on a new connection)")
    except Closed:
        raise Fail(f"after {what}: the server no longer answers new connections")
    finally:
        other.close()


@check
def oversized_option(conn):
    conn.start()
    refused_or_dropped(conn, "an unknown option with 16 MiB of data", OPT_UNKNOWN,
                       bytes(16 << 20))


@check
def oversized_info(conn):
    conn.start()
    name = b"n" * ((1 << 20) - 6)
    refused_or_dropped(conn, "INFO with a 1 MiB payload", OPT_INFO, info_request((), name))


@check
def starttls_notls(conn):
    conn.start()
    replies = conn.option(OPT_STARTTLS)
    expect(final_type(replies) in (REP_ERR_UNSUP, REP_ERR_POLICY),
           f"STARTTLS got {rep_name(final_type(replies))}; proto.md: a NOTLS server "
           "answers ERR_UNSUP or ERR_POLICY (nbdsdk-check tests NOTLS servers)")
    expect_in_sync(conn, "STARTTLS")


@check
def bad_client_flags(conn):
    conn.start(FLAG_FIXED_NEWSTYLE | 1 << 7)
    try:
        conn.send_option(OPT_ABORT)
    except Closed:
        return
    conn.expect_closed("client flag bit 7 set (proto.md: the server MUST drop the connection)")


@check
def no_zeroes_not_advertised(conn):
    flags = conn.greeting()
    if flags & FLAG_NO_ZEROES:
        return  # advertised: nothing to refuse
    conn.send(struct.pack(">I", FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
    try:
        conn.send_option(OPT_ABORT)
    except Closed:
        return
    conn.expect_closed("C_NO_ZEROES without NO_ZEROES advertised (proto.md: MUST drop)")


def export_name_reply(conn, client_flags):
    conn.send(struct.pack(">I", client_flags))
    conn.send_option(OPT_EXPORT_NAME, EXPORT_BYTES)
    try:
        size, flags = struct.unpack(">QH", conn.recv_exact(10))
    except Closed:
        raise Fail("EXPORT_NAME was answered by a disconnect (proto.md: SHOULD accept "
                   "EXPORT_NAME when the default block sizes work)")
    expect(flags & 1, f"transmission flags 0x{flags:x} lack HAS_FLAGS (MUST)")
    return size


@check
def export_name_padding(conn):
    conn.greeting()
    export_name_reply(conn, FLAG_FIXED_NEWSTYLE)
    padding = conn.recv_exact(124)
    expect(padding == bytes(124), "EXPORT_NAME reply padding is not 124 zero bytes")
    read_works(conn, "after EXPORT_NAME")
    conn.request(CMD_DISC)


@check
def export_name_no_zeroes(conn):
    flags = conn.greeting()
    if not flags & FLAG_NO_ZEROES:
        return
    export_name_reply(conn, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES)
    read_works(conn, "after EXPORT_NAME with NO_ZEROES (no padding must follow)")
    conn.request(CMD_DISC)


@check
def unknown_command(conn):
    conn.start()
    enter_transmission(conn)
    cookie = conn.request(CMD_UNKNOWN, 0, READ_LENGTH)
    error, _ = conn.simple_reply(cookie, 0)
    expect(error == EINVAL,
           f"unknown command {CMD_UNKNOWN} got error {error}: proto.md: SHOULD be EINVAL")
    read_works(conn, "after an unknown command")
    conn.request(CMD_DISC)


def structured_transmission(conn):
    conn.start()
    if final_type(conn.option(OPT_STRUCTURED_REPLY)) != REP_ACK:
        raise NotApplicable()
    return enter_transmission(conn)


def expect_error_chunk(chunks, what):
    expect(chunks and chunks[-1][0] in (CHUNK_ERROR, CHUNK_NONE) and
           any(t == CHUNK_ERROR for t, _ in chunks),
           f"{what}: chunks {[t for t, _ in chunks]}, expected an ERROR chunk")
    payload = next(p for t, p in chunks if t == CHUNK_ERROR)
    error, message_length = struct.unpack(">IH", payload[:6])
    expect(message_length <= len(payload) - 6,
           f"{what}: error message length {message_length} runs past the chunk")
    return error


def data_of(chunks, offset, length, what):
    """Reassemble a READ's content chunks (data and holes) into bytes."""
    data = bytearray(length)
    covered = 0
    for chunk_type, payload in chunks:
        if chunk_type == CHUNK_OFFSET_DATA:
            (at,) = struct.unpack(">Q", payload[:8])
            expect(offset <= at and at + len(payload) - 8 <= offset + length,
                   f"{what}: data chunk at {at} outside the request")
            data[at - offset:at - offset + len(payload) - 8] = payload[8:]
            covered += len(payload) - 8
        elif chunk_type == CHUNK_OFFSET_HOLE:
            at, size = struct.unpack(">QI", payload)
            expect(offset <= at and at + size <= offset + length,
                   f"{what}: hole chunk at {at} outside the request")
            covered += size
        else:
            expect(chunk_type == CHUNK_NONE, f"{what}: unexpected chunk type {chunk_type}")
    expect(covered == length, f"{what}: content chunks cover {covered} of {length} bytes")
    return bytes(data)


@check
def structured_read_error(conn):
    size, _ = structured_transmission(conn)
    cookie = conn.request(CMD_READ, size, READ_LENGTH)
    try:
        chunks = conn.chunks(cookie)
    except Fail as e:
        raise Fail(f"READ past the end: {e} (proto.md: with structured replies a READ MUST "
                   "be answered with chunks, even for an early EINVAL)")
    error = expect_error_chunk(chunks, "READ past the end")
    expect(error == EINVAL, f"READ past the end: error {error}, expected EINVAL")
    data_of(conn.chunks(conn.request(CMD_READ, 0, READ_LENGTH)), 0, READ_LENGTH,
            "the READ after it")
    conn.request(CMD_DISC)


@check
def extended_headers(conn):
    conn.start()
    replies = conn.option(OPT_EXTENDED_HEADERS)
    if final_type(replies) == REP_ERR_UNSUP:
        raise NotApplicable()
    expect(final_type(replies) == REP_ACK,
           f"EXTENDED_HEADERS got {rep_name(final_type(replies))}, expected ACK or ERR_UNSUP")
    size, flags = enter_transmission(conn)
    offset = 2 * READ_LENGTH
    pattern = bytes((i * 31 + 7) % 256 for i in range(READ_LENGTH))
    writable = not flags & 2
    if writable:
        cookie = conn.extended_request(CMD_WRITE, offset, READ_LENGTH, CMD_FLAG_PAYLOAD_LEN,
                                       pattern)
        chunks = conn.chunks(cookie, True, offset)
        expect([t for t, _ in chunks] == [CHUNK_NONE],
               f"extended WRITE answered with chunks {[t for t, _ in chunks]}; success "
               "with no payload is a NONE chunk with DONE (simple replies are forbidden)")
    cookie = conn.extended_request(CMD_READ, offset, READ_LENGTH)
    data = data_of(conn.chunks(cookie, True, offset), offset, READ_LENGTH, "extended READ")
    expect(not writable or data == pattern, "extended READ returned other data than written")
    cookie = conn.extended_request(CMD_READ, size, READ_LENGTH)
    error = expect_error_chunk(conn.chunks(cookie, True, size), "extended READ past the end")
    expect(error == EINVAL, f"extended READ past the end: error {error}, expected EINVAL")
    conn.extended_request(CMD_DISC)


def meta_request(queries, export=EXPORT_BYTES):
    return (struct.pack(">I", len(export)) + export + struct.pack(">I", len(queries)) +
            b"".join(struct.pack(">I", len(q)) + q for q in queries))


def set_base_allocation(conn):
    """SET_META_CONTEXT base:allocation; return the context id."""
    replies = conn.option(OPT_SET_META_CONTEXT, meta_request([b"base:allocation"]))
    expect(final_type(replies) == REP_ACK,
           f"SET_META_CONTEXT base:allocation got {rep_name(final_type(replies))}")
    contexts = [(struct.unpack(">I", d[:4])[0], d[4:]) for t, d in replies[:-1]
                if t == REP_META_CONTEXT]
    expect(len(contexts) == 1 and contexts[0][1] == b"base:allocation",
           f"SET_META_CONTEXT base:allocation selected {contexts}, expected exactly it")
    return contexts[0][0]


@check
def meta_context_negotiation(conn):
    conn.start()
    if final_type(conn.option(OPT_STRUCTURED_REPLY)) != REP_ACK:
        raise NotApplicable()
    replies = conn.option(OPT_LIST_META_CONTEXT, meta_request([]))
    if final_type(replies) == REP_ERR_UNSUP:
        raise NotApplicable()
    names = [d[4:] for t, d in replies[:-1] if t == REP_META_CONTEXT]
    expect(final_type(replies) == REP_ACK and b"base:allocation" in names,
           f"LIST_META_CONTEXT with no query: {rep_name(final_type(replies))} {names}, "
           "expected base:allocation listed then ACK")
    replies = conn.option(OPT_SET_META_CONTEXT, meta_request([b"x-nbdsdk-check:none"]))
    expect(replies == [(REP_ACK, b"")],
           f"SET_META_CONTEXT of an unknown namespace got "
           f"{[rep_name(t) for t, _ in replies]}: proto.md: unknown namespaces MUST be "
           "ignored, so just ACK")
    bad = struct.pack(">I", len(EXPORT_BYTES)) + EXPORT_BYTES + struct.pack(">II", 1, 999)
    replies = conn.option(OPT_SET_META_CONTEXT, bad + b"base:allocation")
    expect(final_type(replies) == REP_ERR_INVALID,
           f"SET_META_CONTEXT whose query length runs past the option got "
           f"{rep_name(final_type(replies))}: proto.md: MUST be ERR_INVALID")
    expect_in_sync(conn, "a malformed SET_META_CONTEXT")


@check
def meta_context_needs_structured_replies(conn):
    conn.start()
    replies = conn.option(OPT_SET_META_CONTEXT, meta_request([b"base:allocation"]))
    expect(final_type(replies) & 0x80000000,
           f"SET_META_CONTEXT before STRUCTURED_REPLY got {rep_name(final_type(replies))}: "
           "proto.md: SHOULD be ERR_INVALID (any error is accepted here)")
    expect_in_sync(conn, "SET_META_CONTEXT before STRUCTURED_REPLY")


@check
def unknown_export(conn):
    conn.start()
    replies = conn.option(OPT_GO, info_request((), b"nbdsdk-check-no-such-export"))
    expect(final_type(replies) == REP_ERR_UNKNOWN and len(replies) == 1,
           f"GO for an export that does not exist got {[rep_name(t) for t, _ in replies]}: "
           "proto.md: ERR_UNKNOWN, not preceded by INFO replies")
    expect_in_sync(conn, "GO for an unknown export")


@check
def many_options(conn):
    """Thousands of options in one handshake: answered, or cut off as DoS; either way the
    server must go on serving other clients."""
    conn.start()
    try:
        for i in range(5000):
            replies = conn.option(OPT_UNKNOWN)
            expect(final_type(replies) & 0x80000000,
                   f"unknown option #{i} got {rep_name(final_type(replies))}")
    except Closed:
        print(f"--- many-options: the server disconnected after {i} options", file=sys.stderr)
    other = Connection()
    try:
        other.start()
        expect_in_sync(other, "5000 options on another connection")
    finally:
        other.close()


@check
def disc_with_requests_in_flight(conn):
    conn.start()
    enter_transmission(conn)
    cookies = [conn.request(CMD_READ, i * READ_LENGTH, READ_LENGTH) for i in range(8)]
    conn.request(CMD_DISC)
    answered = set()
    problem = None
    for _ in cookies:
        try:
            magic, error, cookie = struct.unpack(">IIQ", conn.recv_exact(16))
        except Closed:
            raise Fail(f"DISC after 8 READs: only {len(answered)} answered before the close "
                       "(proto.md: the server MUST handle all outstanding requests)")
        if magic != SIMPLE_REPLY_MAGIC or cookie not in cookies:
            raise Fail(f"reply magic 0x{magic:x} cookie {cookie}: the stream is lost")
        if error != 0:
            problem = problem or f"reply magic 0x{magic:x} cookie {cookie} error {error}"
        else:
            conn.recv_exact(READ_LENGTH)
        answered.add(cookie)
    # Read to the server's close before judging: a server still sending replies
    # must not see its client vanish in the middle (nbdkit 1.32 aborts then).
    conn.expect_closed("after DISC")
    expect(problem is None, problem)
    expect(answered == set(cookies), "some READs were answered twice")


@check
def bad_request_magic(conn):
    conn.start()
    enter_transmission(conn)
    conn.send(struct.pack(">IHHQQI", 0x12345678, 0, CMD_READ, 1, 0, 512))
    conn.expect_eof("a request with a bad magic (the stream cannot be resynchronised)")


@check
def extended_block_status(conn):
    conn.start()
    if final_type(conn.option(OPT_EXTENDED_HEADERS)) != REP_ACK:
        raise NotApplicable()
    context = set_base_allocation(conn)
    enter_transmission(conn)
    cookie = conn.extended_request(CMD_BLOCK_STATUS, 0, 1 << 20)
    chunks = conn.chunks(cookie, True, 0)
    status = [(t, p) for t, p in chunks if t != CHUNK_NONE]
    expect(len(status) == 1 and status[0][0] == CHUNK_BLOCK_STATUS_EXT,
           f"BLOCK_STATUS under extended headers answered {[t for t, _ in chunks]}: MUST "
           "be one BLOCK_STATUS_EXT (6) chunk per context")
    payload = status[0][1]
    got_context, count = struct.unpack(">II", payload[:8])
    expect(got_context == context, f"context id {got_context}, negotiated {context}")
    expect(count >= 1 and len(payload) == 8 + 16 * count,
           f"BLOCK_STATUS_EXT with {count} descriptors in {len(payload)} bytes")
    lengths = [struct.unpack(">QQ", payload[8 + 16 * i:24 + 16 * i])[0] for i in range(count)]
    expect(all(lengths) and sum(lengths[:-1]) < 1 << 20,
           f"extent lengths {lengths[:8]}: nonzero, and only the last may pass the request")
    conn.extended_request(CMD_DISC)


@check
def many_connections(conn):
    """16 clients at once, each through GO and a READ."""
    conn.close()
    clients = []
    try:
        for _ in range(16):
            client = Connection()
            clients.append(client)
            client.start()
            enter_transmission(client)
        for i, client in enumerate(clients):
            read_works(client, f"connection {i + 1} of 16")
    finally:
        for client in clients:
            client.close()


@check
def oversized_write(conn):
    """A WRITE payload over the advertised maximum: an error with the stream in sync
    (the payload consumed), or a hard disconnect (allowed against suspected DoS)."""
    conn.start()
    infos = infos_of(conn.option(OPT_GO, info_request()), "GO")
    size, flags = struct.unpack(">QH", infos[INFO_EXPORT])
    if INFO_BLOCK_SIZE not in infos or flags & 2:
        raise NotApplicable()
    _, _, maximum = struct.unpack(">III", infos[INFO_BLOCK_SIZE])
    length = maximum + READ_LENGTH
    if maximum >= 64 << 20 or length > size:
        raise NotApplicable()
    try:
        cookie = conn.request(CMD_WRITE, 0, length, payload=bytes(length))
        error, _ = conn.simple_reply(cookie, 0)
    except Closed:
        return
    expect(error in (EINVAL, 75), f"a {length}-byte WRITE over the maximum {maximum} got "
           f"error {error}, expected EINVAL or EOVERFLOW (or a disconnect)")
    read_works(conn, "after an oversized WRITE (its payload must have been consumed)")
    conn.request(CMD_DISC)


@check
def vanish_mid_payload(conn):
    """A client that dies halfway through a WRITE's payload must not take the server
    (or its other clients) down."""
    conn.start()
    _, flags = enter_transmission(conn)
    if flags & 2:
        raise NotApplicable()  # read-only: a WRITE would not be read through
    conn.send(struct.pack(">IHHQQI", REQUEST_MAGIC, 0, CMD_WRITE, 1, 0, READ_LENGTH) +
              bytes(1024))
    conn.close()
    other = Connection()
    try:
        other.start()
        enter_transmission(other)
        read_works(other, "a new connection after a client vanished mid-WRITE")
        other.request(CMD_DISC)
    finally:
        other.close()


@check
def extended_payload_on_read(conn):
    conn.start()
    if final_type(conn.option(OPT_EXTENDED_HEADERS)) != REP_ACK:
        raise NotApplicable()
    enter_transmission(conn)
    cookie = conn.extended_request(CMD_READ, 0, 16, CMD_FLAG_PAYLOAD_LEN, bytes(16))
    error = expect_error_chunk(conn.chunks(cookie, True, 0),
                               "READ carrying a 16-byte payload (PAYLOAD_LEN)")
    expect(error == EINVAL, f"READ with a payload: error {error}, expected EINVAL "
           "(ext-header branch: SHOULD consume the payload and answer EINVAL)")
    cookie = conn.extended_request(CMD_READ, 0, READ_LENGTH)
    data_of(conn.chunks(cookie, True, 0), 0, READ_LENGTH,
            "the READ after it (the payload must have been consumed)")
    conn.extended_request(CMD_DISC)


def main():
    for name, function in CHECKS:
        conn = None
        try:
            conn = Connection()
            function(conn)
            status, note = "pass", ""
        except NotApplicable:
            print(f"--- {name}: not applicable to what the server offers", file=sys.stderr)
            continue
        except Fail as e:
            status, note = "fail", str(e)
        except Closed as e:
            status, note = "fail", f"unexpected disconnect: {e}"
        except socket.timeout:
            status, note = "fail", f"no answer within {TIMEOUT}s"
        except OSError as e:
            status, note = "fail", f"socket error: {e}"
        finally:
            if conn:
                conn.close()
        print(f"RESULT {status} raw {name}{' ' + note if note else ''}", flush=True)


if __name__ == "__main__":
    main()
