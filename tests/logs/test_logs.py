"""Log tail (remote/tail.sh) + logs.py: decoding, following, the SSM bound, progress parsing."""

from __future__ import annotations

import base64
import gzip
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runctl_jupyter.logs import (
    MAX_CHUNK_BYTES,
    SSM_STDOUT_LIMIT,
    Chunk,
    ChunkError,
    LogFollower,
    Progress,
    ProgressParser,
    decode_chunk,
    follow,
    max_stdout_chars,
    parse_progress_line,
)
from runctl_jupyter.remote import script_path

TAIL = script_path("tail")


def run_tail(log: Path, offset: int, max_bytes: int, enc: str = "auto") -> str:
    proc = subprocess.run(
        ["bash", TAIL, str(log), str(offset), str(max_bytes), enc],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return proc.stdout


def py_tail(data: bytes, offset: int, max_bytes: int, exit_code: int | None, gz: bool = False) -> str:
    """A pure-python stand-in for tail.sh (same output format)."""
    piece = data[offset:offset + max_bytes]
    payload = gzip.compress(piece, mtime=0) if gz and piece else piece
    enc = "gzip+base64" if gz and piece else "base64"
    ec = "" if exit_code is None else str(exit_code)
    body = base64.b64encode(payload).decode()
    # wrap like plain `base64` does, to prove the decoder strips whitespace
    wrapped = "\n".join(body[i:i + 76] for i in range(0, len(body), 76))
    return (f"@runctl size={len(data)} offset={offset} count={len(piece)} exit_code={ec} enc={enc}\n"
            f"@runctl-data\n{wrapped}\n")


class Transient(Exception):
    pass


# ---------------------------------------------------------------- decode_chunk

def test_decode_roundtrip_and_fields() -> None:
    out = py_tail("héllo wörld".encode(), 2, 5, 0)
    chunk = decode_chunk(out)
    assert chunk == Chunk(size=13, offset=2, data="héllo wörld".encode()[2:7], exit_code=0,
                          encoded_chars=len(out))
    assert chunk.more_available


@pytest.mark.parametrize("bad", [
    "",
    "hello",
    "@runctl size=3 offset=0 count=3 exit_code=\n",                         # no data marker
    "@runctl-data\nYWJj\n",                                                 # no header
    "@runctl size=3 offset=0 count=3 exit_code=\n@runctl-data\nYWJ\n",      # truncated base64
    "@runctl size=3 offset=0 count=2 exit_code=\n@runctl-data\nYWJj\n",     # count mismatch
    "@runctl size=2 offset=0 count=3 exit_code=\n@runctl-data\nYWJj\n",     # beyond size
    "@runctl size=x offset=0 count=3 exit_code=\n@runctl-data\nYWJj\n",
    "@runctl size=3 offset=0 count=3 exit_code=zz\n@runctl-data\nYWJj\n",
    "@runctl size=3 offset=0 count=3 exit_code= enc=rot13\n@runctl-data\nYWJj\n",
    "@runctl size=3 offset=0 count=3 exit_code= enc=gzip+base64\n@runctl-data\nYWJj\n",
])
def test_decode_malformed_raises(bad: str) -> None:
    with pytest.raises(ChunkError, match="Malformed log chunk"):
        decode_chunk(bad)


# ---------------------------------------------------------------- LogFollower

def test_follower_multibyte_split_and_stale_chunks() -> None:
    data = "a€b𝄞c".encode()
    f = LogFollower()
    out = []
    for i in range(len(data)):
        chunk = decode_chunk(py_tail(data, i, 1, None))
        out.append(f.feed(chunk))
        out.append(f.feed(chunk))                                  # repeated: ignored
        out.append(f.feed(decode_chunk(py_tail(data, 0, i, None))))  # stale: ignored
    assert "".join(out) == "a€b𝄞c"
    assert f.offset == len(data)


def test_follower_trims_overlap_and_ignores_gap() -> None:
    data = b"0123456789"
    f = LogFollower()
    assert f.feed(decode_chunk(py_tail(data, 0, 4, None))) == "0123"
    assert f.feed(decode_chunk(py_tail(data, 6, 4, None))) == ""       # gap: ignored
    assert f.feed(decode_chunk(py_tail(data, 2, 5, None))) == "456"    # overlap: trimmed
    assert f.offset == 7 and not f.done
    assert f.feed(decode_chunk(py_tail(data, 7, 10, 3))) == "789"
    assert f.done and f.exit_code == 3


def test_follower_finish_flushes_incomplete_char() -> None:
    f = LogFollower()
    assert f.feed(decode_chunk(py_tail("x€".encode()[:3], 0, 9, 0))) == "x"
    assert f.finish() == "\ufffd"
    assert f.finish() == ""


# ---------------------------------------------------------------- follow: property tests

CONTENT = st.one_of(
    st.text(alphabet="ab \n\r\té€𝄞中", max_size=300).map(str.encode),
    st.binary(max_size=200),
)


def _make_fetch(data_draw: Callable, pieces: list[bytes], backend: Callable[[bytes, int, int, int | None], str]):
    """A fetch that grows the log, then randomly fails, repeats stale replies, loses replies or
    returns chunks from ahead of the requested offset. Returns (fetch, written())."""
    written = bytearray()
    history: list[str] = []
    state = {"exit": None}

    def fetch(offset: int, max_bytes: int) -> str:
        if pieces:
            written.extend(pieces.pop(0))
        elif state["exit"] is None:
            state["exit"] = 0
        action = data_draw(st.sampled_from(["ok", "ok", "ok", "transient", "stale", "lost", "ahead"]))
        if action == "transient":
            raise Transient("throttled")
        if action == "stale" and history:
            return data_draw(st.sampled_from(history))
        if action == "ahead" and offset < len(written):
            return backend(bytes(written), offset + 1, max_bytes, state["exit"])
        out = backend(bytes(written), offset, max_bytes, state["exit"])
        history.append(out)
        if action == "lost":
            raise Transient("reply lost")
        return out

    return fetch, written


def _split(content: bytes, draw: Callable) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(content)), max_size=6)))
    bounds = [0, *cuts, len(content)]
    return [content[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=CONTENT, max_bytes=st.integers(1, 40), gz=st.booleans(), data=st.data())
def test_follow_equals_file_pure(content: bytes, max_bytes: int, gz: bool, data: st.DataObject) -> None:
    pieces = _split(content, data.draw)
    fetch, written = _make_fetch(data.draw, pieces,
                                 lambda d, o, m, e: py_tail(d, o, m, e, gz))
    got: list[str] = []
    result = follow(fetch, got.append, poll_interval=0.0, sleep=lambda s: None,
                    is_transient=lambda e: isinstance(e, Transient), max_bytes=max_bytes,
                    max_consecutive_errors=None)
    assert bytes(written) == content
    assert "".join(got) == content.decode("utf-8", errors="replace")
    assert result.exit_code == 0 and result.offset == len(content)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=CONTENT, max_bytes=st.integers(1, 64), enc=st.sampled_from(["auto", "base64"]),
       data=st.data())
def test_follow_equals_file_real_tail_sh(tmp_path_factory: pytest.TempPathFactory, content: bytes,
                                         max_bytes: int, enc: str, data: st.DataObject) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    log = run_dir / "log"
    log.write_bytes(b"")

    def backend(d: bytes, offset: int, mx: int, exit_code: int | None) -> str:
        log.write_bytes(d)
        if exit_code is not None:
            (run_dir / "exit_code").write_text(f"{exit_code}\n")
        return run_tail(log, offset, mx, enc)

    pieces = _split(content, data.draw)
    fetch, written = _make_fetch(data.draw, pieces, backend)
    got: list[str] = []
    result = follow(fetch, got.append, poll_interval=0.0, sleep=lambda s: None,
                    is_transient=lambda e: isinstance(e, Transient), max_bytes=max_bytes,
                    max_consecutive_errors=None)
    assert "".join(got) == content.decode("utf-8", errors="replace")
    assert result.exit_code == 0 and result.offset == len(content)


def test_follow_non_transient_error_propagates_and_gives_up_after_retries() -> None:
    with pytest.raises(KeyError):
        follow(lambda o, m: (_ for _ in ()).throw(KeyError("x")), print, poll_interval=0,
               sleep=lambda s: None)
    sleeps: list[float] = []

    def always_fail(o: int, m: int) -> str:
        raise Transient()

    with pytest.raises(Transient):
        follow(always_fail, print, poll_interval=1.0, sleep=sleeps.append,
               is_transient=lambda e: True, max_consecutive_errors=5, backoff_max=5.0)
    assert sleeps == [1.0, 2.0, 4.0, 5.0]  # exponential backoff, capped


def test_follow_catches_up_without_sleeping_and_sleeps_when_idle() -> None:
    data = b"x" * 100
    sleeps: list[float] = []
    calls = {"n": 0}

    def fetch(offset: int, mx: int) -> str:
        calls["n"] += 1
        return py_tail(data, offset, mx, 0 if calls["n"] > 12 else None)

    out: list[str] = []
    follow(fetch, out.append, poll_interval=2.0, sleep=sleeps.append, max_bytes=10)
    assert "".join(out) == "x" * 100
    assert calls["n"] == 13 and sleeps == [2.0] * 3  # 9 catch-ups, then 3 idle polls


def test_follow_stops_when_asked() -> None:
    res = follow(lambda o, m: py_tail(b"", o, m, None), print, poll_interval=0, sleep=lambda s: None,
                 should_stop=iter([False, False, True]).__next__)
    assert res.fetches == 2 and res.exit_code is None


@pytest.mark.parametrize("max_bytes", [3, 7, 4096])
def test_reattaching_mid_log_starts_at_a_whole_line(max_bytes: int) -> None:
    data = "epoch 1/3 ✓ loss=0.5\nepoch 2/3 ✓ loss=0.4\nepoch 3/3 ✓ loss=0.3\n[runctl] exit code 0\n".encode()
    out: list[str] = []
    start = data.index(b"\xe2\x9c\x93", 20) + 1  # mid-way through the second line's "✓"
    follow(lambda o, m: py_tail(data, o, m, 0), out.append, poll_interval=0, sleep=lambda s: None,
           max_bytes=max_bytes, start_offset=start, from_line_start=True)
    assert "".join(out) == "epoch 3/3 ✓ loss=0.3\n[runctl] exit code 0\n"
    # from the very start there is nothing to skip
    out.clear()
    follow(lambda o, m: py_tail(data, o, m, 0), out.append, poll_interval=0, sleep=lambda s: None,
           max_bytes=max_bytes, from_line_start=True)
    assert "".join(out).encode() == data


# ---------------------------------------------------------------- tail.sh itself

def test_tail_sh_missing_log_and_exit_code(tmp_path: Path) -> None:
    log = tmp_path / "runs" / "r1" / "log"
    c = decode_chunk(run_tail(log, 0, 100))
    assert (c.size, c.data, c.exit_code, c.exists) == (0, b"", None, False)
    log.parent.mkdir(parents=True)
    log.write_bytes(b"hello\n")
    (log.parent / "exit_code").write_text("137\n")
    c = decode_chunk(run_tail(log, 0, 100))
    assert (c.size, c.data, c.exit_code, c.exists) == (6, b"hello\n", 137, True)
    (log.parent / "exit_code").write_text("garbage")
    assert decode_chunk(run_tail(log, 6, 100)).exit_code is None
    c = decode_chunk(run_tail(log, 99, 100))     # offset beyond the end: nothing, no error
    assert (c.offset, c.data) == (99, b"")


@pytest.mark.parametrize("args", [["L", "1e3", "1"], ["L", "-1", "5"], ["L", "0", "0"], ["L", "0", "a"],
                                  ["L", "0", "5", "zip"], ["L", "0"], ["L", "9" * 19, "5"]])
def test_tail_sh_rejects_bad_arguments(tmp_path: Path, args: list[str]) -> None:
    args = [str(tmp_path / "log") if a == "L" else a for a in args]
    proc = subprocess.run(["bash", TAIL, *args], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and "tail.sh:" in proc.stderr


def test_tail_sh_growing_file(tmp_path: Path) -> None:
    run_dir = tmp_path / "runctl" / "proj" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    log = run_dir / "log"
    log.write_bytes(b"")
    lines = [f"epoch {i}/40 loss={1 / i:.4f} ✓\n".encode() for i in range(1, 41)]

    def writer() -> None:
        with log.open("ab") as fh:
            for line in lines:
                # write a line in two parts, split inside the multibyte check mark
                cut = len(line) - 3
                fh.write(line[:cut])
                fh.flush()
                time.sleep(0.002)
                fh.write(line[cut:])
                fh.flush()
        (run_dir / "exit_code").write_text("0\n")

    t = threading.Thread(target=writer)
    t.start()
    got: list[str] = []
    parser = ProgressParser()
    res = follow(lambda o, m: run_tail(log, o, m), lambda s: (got.append(s), parser.feed(s)),
                 poll_interval=0.005, max_bytes=50)
    t.join()
    assert "".join(got) == b"".join(lines).decode()
    assert res.exit_code == 0
    assert parser.latest == Progress(40, 40, "epoch")


# ---------------------------------------------------------------- the 24,000-character bound

def test_bound_arithmetic() -> None:
    assert max_stdout_chars(MAX_CHUNK_BYTES) <= SSM_STDOUT_LIMIT
    assert max_stdout_chars(MAX_CHUNK_BYTES + 300) > SSM_STDOUT_LIMIT  # the constant is near-tight


def _worst_outputs(tmp_path: Path, content: bytes, offset: int = 0) -> list[str]:
    run_dir = tmp_path / "w"
    run_dir.mkdir(exist_ok=True)
    log = run_dir / "log"
    log.write_bytes(content)
    (run_dir / "exit_code").write_text("-2147483648\n")
    return [run_tail(log, offset, 10**12 if enc == "auto" else 999_999_999, enc)
            for enc in ("auto", "base64")]


@pytest.mark.parametrize("kind", ["random", "text", "half"])
def test_tail_sh_output_never_exceeds_ssm_limit(tmp_path: Path, kind: str) -> None:
    rnd = random.Random(7)
    if kind == "random":
        content = rnd.randbytes(400_000)
    elif kind == "text":
        content = b"".join(f"step {i} loss {rnd.random():.6f}\n".encode() for i in range(40_000))
    else:  # compressible prefix then incompressible: the adaptive shrink has to kick in
        content = b"a" * 100_000 + rnd.randbytes(300_000)
    for offset in (0, 50_000, 99_000):
        for out in _worst_outputs(tmp_path, content, offset):
            chunk = decode_chunk(out)
            assert len(out) <= max_stdout_chars() <= SSM_STDOUT_LIMIT
            assert chunk.data == content[offset:offset + len(chunk.data)] and chunk.data


def test_tail_sh_header_with_huge_sparse_file(tmp_path: Path) -> None:
    log = tmp_path / "log"
    for size in (10**15, 10**13, 10**12, 10**11):
        try:
            with log.open("wb") as fh:
                fh.truncate(size)
            break
        except OSError:
            continue
    else:
        raise AssertionError("this filesystem made no sparse file of even 100 GB: the test needs one")
    out = run_tail(log, size - 20_000, 10**9)
    assert len(out) <= max_stdout_chars() <= SSM_STDOUT_LIMIT
    assert decode_chunk(out).size == size


# ---------------------------------------------------------------- bytes moved / log size

def realistic_training_log(n_epochs: int = 30, steps: int = 200) -> bytes:
    rnd = random.Random(0)
    out: list[str] = ["2024-05-01 10:00:00 INFO Loading dataset from /data/train (50,000 samples)\n"]
    for e in range(1, n_epochs + 1):
        out.append(f"Epoch {e}/{n_epochs}\n")
        for s in range(0, steps + 1, 4):
            pct = s * 100 // steps
            bar = "█" * (pct // 10) + " " * (10 - pct // 10)
            out.append(f"\rEpoch {e}: {pct:3d}%|{bar}| {s}/{steps} [00:{s // 7:02d}<00:{(steps - s) // 7:02d},"
                       f" {rnd.uniform(5, 9):.2f}it/s, loss={rnd.uniform(0.1, 2):.4f}]")
        out.append("\n")
        out.append(f"2024-05-01 10:{e:02d}:13 INFO epoch {e}/{n_epochs} train_loss={rnd.random():.5f} "
                   f"val_loss={rnd.random():.5f} val_acc={rnd.random():.4f} lr={1e-3 * 0.95 ** e:.6g}\n")
        out.append(f"2024-05-01 10:{e:02d}:14 INFO Saved checkpoint to checkpoints/epoch_{e:03d}.pt\n")
    return "".join(out).encode()


def measure_ratio(tmp_path: Path, content: bytes, enc: str) -> float:
    log = tmp_path / f"m-{enc}" / "log"
    log.parent.mkdir()
    log.write_bytes(content)
    (log.parent / "exit_code").write_text("0\n")
    got: list[str] = []
    res = follow(lambda o, m: run_tail(log, o, m, enc), got.append, poll_interval=0)
    assert "".join(got).encode() == content
    return res.encoded_chars / len(content)


def test_bytes_moved_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = realistic_training_log()
    rnd_bytes = random.Random(1).randbytes(300_000)
    # random bytes are not UTF-8: measure them through the raw chunks instead of the text
    ratios = {
        "training log, auto (gzip)": measure_ratio(tmp_path, text, "auto"),
        "training log, base64": measure_ratio(tmp_path, text, "base64"),
    }
    for enc in ("auto", "base64"):
        log = tmp_path / f"r-{enc}" / "log"
        log.parent.mkdir()
        log.write_bytes(rnd_bytes)
        (log.parent / "exit_code").write_text("0\n")
        offset = moved = 0
        while offset < len(rnd_bytes):
            out = run_tail(log, offset, MAX_CHUNK_BYTES, enc)
            chunk = decode_chunk(out)
            assert chunk.data == rnd_bytes[offset:chunk.end]
            offset, moved = chunk.end, moved + len(out)
        ratios[f"random bytes, {enc}"] = moved / len(rnd_bytes)
    with capsys.disabled():
        print(f"\nlog size {len(text)} bytes (training log), {len(rnd_bytes)} (random)")
        for k, v in ratios.items():
            print(f"  bytes moved / log size — {k}: {v:.3f}")
    assert all(v <= 1.4 for v in ratios.values())
    assert ratios["training log, auto (gzip)"] < 0.4


# ---------------------------------------------------------------- progress

@pytest.mark.parametrize("line, expected", [
    ("epoch 3/10 loss=0.1", Progress(3, 10, "epoch")),
    ("EPOCH 3 / 10", Progress(3, 10, "epoch")),
    ("Epoch [3/10], Step [100/600], Loss: 0.2", Progress(3, 10, "epoch")),
    ("2024 INFO epoch: 7/12 done", Progress(7, 12, "epoch")),
    (" 42%|████▏     | 42/100 [00:04<00:05, 10.1it/s]", Progress(42, 100, "tqdm")),
    ("Epoch 2: 100%|##########| 100/100 [00:10<00:00,  9.9it/s, loss=0.3]", Progress(100, 100, "tqdm")),
    ("train:  50%|█████     | 1.20k/2.40k [00:01<00:01, 1.1kit/s]", Progress(1200, 2400, "tqdm")),
    ("epochs 3/10", None),
    ("repoch 3/10", None),
    ("epoch 3/0", None),
    ("42it [00:01, 30.0it/s]", None),
    ("nothing here", None),
])
def test_parse_progress_line(line: str, expected: Progress | None) -> None:
    assert parse_progress_line(line) == expected


def test_progress_parser_handles_cr_and_partial_lines() -> None:
    p = ProgressParser()
    assert p.feed("Epoch 1/") == []
    assert p.feed("5 start\n\r  10%|█  | 1/10 [00") == [Progress(1, 5, "epoch")]
    assert p.feed(":01]\r  20%|██ | 2/1") == [Progress(1, 10, "tqdm")]   # 2/1… is not complete yet
    assert p.feed("0 [00:02]\r\n") == [Progress(2, 10, "tqdm")]
    assert p.latest == Progress(2, 10, "tqdm") and p.latest_epoch == Progress(1, 5, "epoch")
    assert p.feed("epoch 2/5") == []
    assert p.flush() == [Progress(2, 5, "epoch")]


def test_progress_from_realistic_log_in_random_pieces() -> None:
    text = realistic_training_log(n_epochs=5, steps=20).decode()
    rnd = random.Random(3)
    p = ProgressParser()
    i = 0
    found: list[Progress] = []
    while i < len(text):
        n = rnd.randint(1, 30)
        found += p.feed(text[i:i + n])
        i += n
    found += p.flush()
    epochs = [x for x in found if x.kind == "epoch"]
    assert epochs[0] == Progress(1, 5) and epochs[-1] == Progress(5, 5)
    assert all(x.total == 20 for x in found if x.kind == "tqdm")
    assert p.latest == Progress(5, 5)
