"""Log streaming by byte offset, and progress parsing (epoch lines, tqdm).

SSM returns a command's stdout only once it ends and only up to 24,000 characters, so a live log
is read as a sequence of short ``remote/tail.sh LOG OFFSET MAX_BYTES`` calls. Each prints::

    @runctl size=<file size> offset=<OFFSET> count=<raw bytes> exit_code=<int or empty> enc=<enc>
    @runctl-data
    <base64 of the chunk (of its gzip when enc=gzip+base64); may be wrapped>

:func:`decode_chunk` turns that into a :class:`Chunk`; :class:`LogFollower` keeps the byte offset
and an incremental UTF-8 decoder (a character split across chunks is neither lost nor doubled,
and a repeated or stale chunk is trimmed or ignored); :func:`follow` is the polling loop;
:class:`ProgressParser` recognises ``epoch 3/10`` / ``Epoch [3/10]`` lines and tqdm bars.

A long way behind (a finished run's 20 MB log, a follower that re-attaches late), ``follow`` asks
an optional ``catch_up(offset, size) -> Chunk | None`` for the rest in one piece (log_catchup.py: one SSM
command that uploads the range to S3, one download) and goes on with short SSM reads from its end.

Pure logic: nothing here talks to AWS; the caller passes ``fetch(offset, max_bytes) -> stdout``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import gzip
import re
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .errors import BackendError
from .remote.limits import MAX_CHUNK_BYTES

__all__ = [
    "MAX_CHUNK_BYTES",
    "SSM_STDOUT_LIMIT",
    "Chunk",
    "CatchUp",
    "ChunkError",
    "FollowResult",
    "LogFollower",
    "Progress",
    "ProgressParser",
    "decode_chunk",
    "follow",
    "max_stdout_chars",
]

#: GetCommandInvocation returns at most this many characters of stdout.
SSM_STDOUT_LIMIT = 24_000
#: Largest payload (before base64) tail.sh sends, MAX_CHUNK_BYTES, is shared with tail.sh (remote/limits.py).
#: Widest header tail.sh can print: size (19 digits), offset (18, tail.sh refuses more), count (6:
#: a gzip window is at most 16 * MAX_CHUNK_BYTES raw bytes), exit_code (-2147483648 style, 11).
MAX_HEADER_CHARS = len(
    "@runctl size=" + "9" * 19 + " offset=" + "9" * 18 + " count=" + "9" * 6
    + " exit_code=" + "-" + "9" * 10 + " enc=gzip+base64 exists=1\n" + "@runctl-data\n"
)

DATA_MARKER = "@runctl-data"
_ENCODINGS = ("base64", "gzip+base64")


def max_stdout_chars(max_bytes: int = MAX_CHUNK_BYTES) -> int:
    """Worst-case tail.sh stdout for a payload of ``max_bytes``: header + base64 + final newline."""
    return MAX_HEADER_CHARS + 4 * -(-max_bytes // 3) + 1


class ChunkError(BackendError):
    """tail.sh's output could not be understood (truncated, garbled or not a chunk at all)."""


@dataclass(frozen=True)
class Chunk:
    """One read of a log: ``data`` is the raw bytes ``[offset, offset + len(data))`` of the file."""

    size: int
    offset: int
    data: bytes
    exit_code: int | None = None
    exists: bool = True
    encoding: str = "base64"
    encoded_chars: int = 0  # length of the stdout it came from (for measuring overhead)

    @property
    def count(self) -> int:
        return len(self.data)

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    @property
    def more_available(self) -> bool:
        """The file held more bytes than this chunk carried when it was read (catch up at once)."""
        return self.end < self.size


def _header_fields(line: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in line[len("@runctl "):].split():
        key, sep, value = item.partition("=")
        if not sep:
            raise ChunkError(f"Malformed log chunk header item {item!r}.")
        fields[key] = value
    return fields


def _int_field(fields: dict[str, str], key: str) -> int:
    value = fields.get(key)
    if value is None or not re.fullmatch(r"\d+", value):
        raise ChunkError(f"Malformed log chunk: field {key!r} is {value!r}, expected a non-negative integer.")
    return int(value)


def decode_chunk(stdout: str) -> Chunk:
    """Parse tail.sh's stdout. Raises :class:`ChunkError` on anything that is not a whole chunk."""
    lines = stdout.split("\n")
    try:
        marker_at = next(i for i, line in enumerate(lines) if line.rstrip("\r") == DATA_MARKER)
    except StopIteration:
        raise ChunkError(
            "Malformed log chunk: no @runctl-data line (output truncated or not from tail.sh).",
            details=[stdout[:200]],
        ) from None
    headers = [ln.rstrip("\r") for ln in lines[:marker_at] if ln.startswith("@runctl ")]
    if not headers:
        raise ChunkError("Malformed log chunk: no @runctl header line.", details=[stdout[:200]])
    fields: dict[str, str] = {}
    for line in headers:
        fields.update(_header_fields(line))
    size = _int_field(fields, "size")
    offset = _int_field(fields, "offset")
    count = _int_field(fields, "count")
    raw_exit = fields.get("exit_code", "")
    if raw_exit == "":
        exit_code = None
    elif re.fullmatch(r"-?\d+", raw_exit):
        exit_code = int(raw_exit)
    else:
        raise ChunkError(f"Malformed log chunk: exit_code is {raw_exit!r}.")
    encoding = fields.get("enc", "base64")
    if encoding not in _ENCODINGS:
        raise ChunkError(f"Malformed log chunk: unknown encoding {encoding!r}.")
    body = "".join("".join(lines[marker_at + 1:]).split())
    try:
        payload = base64.b64decode(body.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ChunkError(f"Malformed log chunk: bad base64 ({exc}).") from None
    if encoding == "gzip+base64":
        try:
            data = gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            raise ChunkError(f"Malformed log chunk: bad gzip data ({exc}).") from None
    else:
        data = payload
    if len(data) != count:
        raise ChunkError(
            f"Malformed log chunk: header says {count} bytes, data holds {len(data)} (output truncated?)."
        )
    if count and offset + count > size:
        raise ChunkError(f"Malformed log chunk: bytes {offset}+{count} lie beyond the file size {size}.")
    return Chunk(
        size=size,
        offset=offset,
        data=data,
        exit_code=exit_code,
        exists=fields.get("exists", "1") != "0",
        encoding=encoding,
        encoded_chars=len(stdout),
    )


class LogFollower:
    """Byte-offset bookkeeping + incremental UTF-8 decoding for one log.

    ``feed`` accepts chunks in any order and any number of times: a chunk that starts before the
    current offset is trimmed, one entirely before it (stale / retried) is ignored, and one that
    starts after it (a gap) is ignored too — the next read from :attr:`offset` fetches the gap.
    """

    def __init__(self, offset: int = 0, *, from_line_start: bool = False) -> None:
        self.offset = offset
        # starting mid-log (re-attaching): skip the bytes before the first line break
        self._skip_partial_line = from_line_start and offset > 0
        self.size = 0
        self.exit_code: int | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._finished = False

    def feed(self, chunk: Chunk) -> str:
        self.size = max(self.size, chunk.size)
        if chunk.exit_code is not None:
            self.exit_code = chunk.exit_code
        if chunk.offset > self.offset or chunk.end <= self.offset:
            return ""
        new = chunk.data[self.offset - chunk.offset:]
        self.offset += len(new)
        if self._skip_partial_line:
            newline = new.find(b"\n")
            if newline < 0:
                return ""
            self._skip_partial_line = False
            new = new[newline + 1:]
        return self._decoder.decode(new)

    @property
    def done(self) -> bool:
        """The run has ended and every byte of its log has been read."""
        return self.exit_code is not None and self.offset >= self.size

    def finish(self) -> str:
        """Flush the decoder at the end of the log (an incomplete trailing character becomes U+FFFD)."""
        if self._finished:
            return ""
        self._finished = True
        return self._decoder.decode(b"", final=True)


@dataclass(frozen=True)
class FollowResult:
    exit_code: int | None
    offset: int
    fetches: int
    encoded_chars: int  # total characters of stdout received (bytes moved over SSM)
    retries: int
    catch_ups: int = 0  # ranges read in one piece by ``catch_up`` (one SSM command + one S3 download each)
    caught_up_bytes: int = 0


CatchUp = Callable[[int, int], "Chunk | None"]  # (offset, the size the log is known to have)


def _never_transient(exc: BaseException) -> bool:
    return False


def follow(
    fetch: Callable[[int, int], str],
    on_text: Callable[[str], object],
    *,
    poll_interval: float,
    stop_when_exited: bool = True,
    sleep: Callable[[float], object] = time.sleep,
    is_transient: Callable[[BaseException], bool] = _never_transient,
    max_bytes: int = MAX_CHUNK_BYTES,
    start_offset: int = 0,
    from_line_start: bool = False,
    should_stop: Callable[[], bool] | None = None,
    backoff_base: float | None = None,
    backoff_max: float = 30.0,
    max_consecutive_errors: int | None = 20,
    catch_up: CatchUp | None = None,
    catch_up_bytes: int = 256 * 1024,
    known_size: int = 0,
) -> FollowResult:
    """Poll a log until its run has ended and it has been read to the end.

    ``fetch(offset, max_bytes)`` returns tail.sh's stdout. While the file holds more than the last
    chunk carried, fetch again at once (catch-up); otherwise sleep ``poll_interval``. An exception
    for which ``is_transient(exc)`` is true is retried with exponential backoff from the same offset
    (``max_consecutive_errors`` in a row re-raise it; ``None`` retries forever); anything else —
    including a malformed chunk — propagates. ``should_stop()`` returning true detaches early.
    ``from_line_start`` (when ``start_offset`` is mid-log) begins at the next whole line.

    Whenever more than ``catch_up_bytes`` are known to wait (``known_size``, then each chunk's size),
    ``catch_up(offset, size)`` is asked for them in one chunk; ``None`` means it cannot (no bucket, upload
    failed) and it is not asked again: the short reads carry on, byte-exact either way.
    """
    follower = LogFollower(start_offset, from_line_start=from_line_start)
    follower.size = known_size
    piece: Chunk | None = None
    fetches = chars = retries = errors_in_row = catch_ups = caught_up = 0
    base = backoff_base if backoff_base is not None else max(poll_interval, 0.1)
    while True:
        if should_stop is not None and should_stop():
            break
        behind = catch_up is not None and follower.size - follower.offset > catch_up_bytes
        try:
            if behind:
                assert catch_up is not None
                piece = catch_up(follower.offset, follower.size)
                if piece is None or piece.count == 0:
                    catch_up = None  # not again: read on with short fetches
                    continue
                catch_ups += 1
                caught_up += piece.count
                stdout = ""
            else:
                stdout = fetch(follower.offset, max_bytes)
        except Exception as exc:
            if not is_transient(exc):
                raise
            errors_in_row += 1
            retries += 1
            if max_consecutive_errors is not None and errors_in_row >= max_consecutive_errors:
                raise
            sleep(min(backoff_max, base * 2 ** (errors_in_row - 1)))
            continue
        errors_in_row = 0
        if behind and piece is not None:
            chunk = piece
        else:
            fetches += 1
            chars += len(stdout)
            chunk = decode_chunk(stdout)
        before = follower.offset
        text = follower.feed(chunk)
        if text:
            on_text(text)
        if follower.done and stop_when_exited:
            tail = follower.finish()
            if tail:
                on_text(tail)
            break
        if follower.offset > before and follower.offset < follower.size:
            continue  # catch up: more is already there
        sleep(poll_interval)
    return FollowResult(
        exit_code=follower.exit_code, offset=follower.offset, fetches=fetches, encoded_chars=chars,
        retries=retries, catch_ups=catch_ups, caught_up_bytes=caught_up,
    )


# --------------------------------------------------------------------------- progress

@dataclass(frozen=True)
class Progress:
    current: int
    total: int
    kind: str = "epoch"  # "epoch" or "tqdm"
    line: str = field(default="", compare=False, repr=False)

    @property
    def fraction(self) -> float:
        return self.current / self.total if self.total else 0.0


_EPOCH = re.compile(r"\bepoch\b\s*[:=]?\s*\[?\s*(\d+)\s*/\s*(\d+)\s*\]?", re.IGNORECASE)
_NUM = r"\d+(?:\.\d+)?[kMGTPEZY]?"
_TQDM = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(" + _NUM + r")/(" + _NUM + r")(?=\s|\[|$)")
_SCALE = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
          "Z": 10**21, "Y": 10**24}


def _tqdm_number(text: str) -> int:
    suffix = text[-1] if text[-1].isalpha() else ""
    number = text[: len(text) - len(suffix)]
    return round(float(number) * _SCALE[suffix])


def parse_progress_line(line: str) -> Progress | None:
    """The progress a single line reports (the last match in it), or None."""
    found: Progress | None = None
    for m in _TQDM.finditer(line):
        total = _tqdm_number(m.group(3))
        if total > 0:
            found = Progress(_tqdm_number(m.group(2)), total, "tqdm", line)
    if found is not None:
        return found
    for m in _EPOCH.finditer(line):
        total = int(m.group(2))
        if total > 0:
            found = Progress(int(m.group(1)), total, "epoch", line)
    return found


class ProgressParser:
    """Feed log text in any pieces; get :class:`Progress` for each completed line that has one.

    Lines end at ``\\n`` or ``\\r`` (tqdm redraws with ``\\r``); an unterminated line is kept until
    its end arrives (or :meth:`flush`), so a number cut in half by a chunk boundary is never read.
    """

    def __init__(self) -> None:
        self._partial = ""
        self.latest: Progress | None = None
        self.latest_epoch: Progress | None = None
        self.latest_tqdm: Progress | None = None

    def feed(self, text: str) -> list[Progress]:
        data = self._partial + text
        pieces = re.split(r"[\r\n]", data)
        self._partial = pieces.pop()
        return self._parse(pieces)

    def flush(self) -> list[Progress]:
        rest, self._partial = self._partial, ""
        return self._parse([rest])

    def _parse(self, lines: Iterable[str]) -> list[Progress]:
        found: list[Progress] = []
        for line in lines:
            progress = parse_progress_line(line) if line else None
            if progress is None:
                continue
            found.append(progress)
            self.latest = progress
            if progress.kind == "epoch":
                self.latest_epoch = progress
            else:
                self.latest_tqdm = progress
        return found
