"""Catching up a long log through S3: one SSM command and one download instead of hundreds of reads.

Every short read of a log (``remote/tail.sh``) is an SSM round trip — about a second on AWS — and
carries at most ~17 KB of gzip'd data, so a 20 MB log is a few hundred of them. When more than
:data:`CATCH_UP_BYTES` wait to be shown and a bucket is configured, :class:`S3CatchUp` instead:

1. presigns one PUT (short-lived) for a key under ``runctl/<project>/log-transfers/``;
2. sends ONE command, ``remote/log_upload.sh LOG OFFSET MAX`` with the URL on its standard input
   (never in an argv, the environment or a log), which uploads the byte range ``[OFFSET, size)``
   gzip'd and reports its size, count and SHA-256;
3. downloads the object once, checks count and SHA-256 of the raw bytes, deletes the object and
   returns the range as a :class:`~runctl_jupyter.logs.Chunk` (``logs.follow`` shows it and goes on
   with live SSM reads from its end).

Without a bucket (or when the instance cannot reach S3) it says so once and the short SSM reads
carry on: the bytes shown are the log's bytes either way.
"""

from __future__ import annotations

import gzip
import hashlib
import secrets
import zlib
from collections.abc import Callable

from . import logs
from .aws import s3, ssm
from .aws.session import Context
from .errors import BackendError
from .remote.replies import LogUploadReply

__all__ = ["CATCH_UP_BYTES", "S3CatchUp", "read_range"]

#: Catch up through S3 when more than this many bytes of the log wait to be shown.
CATCH_UP_BYTES = 256 * 1024
#: The most one catch-up uploads (a single PUT holds 5 GB; more is caught up in several).
MAX_UPLOAD_BYTES = 4_000_000_000
URL_TTL_S = 600  # the upload happens within the command: the URL need not outlive it by much
COMMAND_TIMEOUT_S = 540
# what one SSM read carries at most (tail.sh's gzip window), for the estimate in the no-bucket note
_BYTES_PER_READ = logs.MAX_CHUNK_BYTES * 16


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class S3CatchUp:
    """``catch_up(offset, size)`` for :func:`runctl_jupyter.logs.follow` (see the module docstring).

    ``echo`` hears, once each, why a long log is read over SSM instead (no bucket, a failed upload)."""

    def __init__(self, ctx: Context, instance_id: str, log_path: str, project: str, run_id: str,
                 echo: Callable[[str], object] | None = None) -> None:
        self.ctx, self.instance_id, self.log_path = ctx, instance_id, log_path
        self.project, self.run_id = project, run_id
        self.echo = echo or (lambda _line: None)
        self.disabled = False
        self.transfers = 0
        self.undeleted = 0

    @property
    def threshold(self) -> int:
        return CATCH_UP_BYTES

    def __call__(self, offset: int, known_size: int = 0) -> logs.Chunk | None:
        """The log from ``offset`` to its current end (``known_size``: how far it was known to reach)."""
        waiting = max(0, known_size - offset)
        if self.disabled:
            return None
        bucket = s3.bucket_for(self.ctx, None, required=False)
        if bucket is None:
            self._give_up(waiting, "no S3 bucket is configured; `runctl config set bucket NAME` makes it one "
                          "S3 download")
            return None
        key = f"runctl/{self.project}/log-transfers/{self.run_id}/{offset}-{secrets.token_hex(6)}"
        url = s3.presigner(self.ctx, bucket).generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=URL_TTL_S)
        result = ssm.run(self.ctx, self.instance_id, "log_upload",
                         [self.log_path, str(offset), str(MAX_UPLOAD_BYTES)],
                         ssm.remote_root_env(self.ctx), timeout_s=COMMAND_TIMEOUT_S, stdin=url + "\n")
        reply = LogUploadReply.parse(result.stdout)
        if result.exit_code != 0 or not reply.uploaded:
            why = reply.reason or (result.stderr.strip().splitlines() or ["no output"])[-1]
            self._give_up(waiting, f"the instance could not upload it to s3://{bucket} ({why})")
            self._delete(bucket, key)
            return None
        try:
            body = s3.get_bytes(self.ctx, bucket, key)
        except BackendError as exc:
            body = None
            self._give_up(waiting, f"its copy could not be downloaded ({exc.message})")
        finally:
            self._delete(bucket, key)
        if body is None:
            return None
        chunk = self._verify(reply, body, offset)
        if chunk is None:
            self._give_up(waiting, "the copy in S3 did not match what the instance sent")
            return None
        self.transfers += 1
        return chunk

    def _verify(self, reply: LogUploadReply, body: bytes, offset: int) -> logs.Chunk | None:
        if not reply.complete:
            return None
        try:
            data = gzip.decompress(body) if reply.gzip else body
        except (OSError, EOFError, zlib.error):
            return None
        if reply.offset != offset or len(data) != reply.count or hashlib.sha256(data).hexdigest() != reply.sha256:
            return None
        return logs.Chunk(size=reply.size, offset=offset, data=data, exit_code=reply.exit_code, encoding="s3")

    def _delete(self, bucket: str, key: str) -> None:
        try:
            self.ctx.client("s3").delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # best effort: what is left is a copy of part of a log, no more
            if not self.undeleted:
                self.echo(f"Could not delete the log's temporary copy s3://{bucket}/{key} ({exc}); "
                          f"copies like it are under s3://{bucket}/runctl/{self.project}/log-transfers/.")
            self.undeleted += 1

    def _give_up(self, waiting: int, why: str) -> None:
        self.disabled = True
        if waiting:
            reads = -(-waiting // _BYTES_PER_READ)
            self.echo(f"Reading the {_mb(waiting)} of log still to show over SSM (at least {reads} round trips, "
                      f"about a second each on AWS): {why}.")
        else:
            self.echo(f"Reading the log over SSM, in short reads: {why}.")


def read_range(fetch: Callable[[int, int], str], catch_up: S3CatchUp | None, start: int, end: int) -> str:
    """The log's text from ``start`` to (at least) ``end``: in one S3 transfer when the range is longer
    than the threshold and a bucket is there, otherwise (and for what is left) with short SSM reads."""
    follower = logs.LogFollower(start)
    parts = []
    while follower.offset < end:
        chunk = None
        if catch_up is not None and end - follower.offset > catch_up.threshold:
            chunk = catch_up(follower.offset, end)
            if chunk is None or chunk.count == 0:
                catch_up, chunk = None, None
        if chunk is None:
            chunk = logs.decode_chunk(fetch(follower.offset, logs.MAX_CHUNK_BYTES))
        text = follower.feed(chunk)
        if not text and chunk.count == 0:
            break
        parts.append(text)
    parts.append(follower.finish())
    return "".join(parts)

