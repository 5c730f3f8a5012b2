"""U1: uploading a large artifact to each store, with the api's memory watched.

For each store (``fs``: ``XDP47_BLOB_DIR`` on this disk; ``s3``: a real
S3-compatible server, ``XDP47_TEST_S3_URL`` or moto's started here) an
``xdp47-api`` process is started on a fresh migrated database, a file of
``--mib`` MiB is streamed to ``POST /api/artifacts/upload`` from a separate
process, and the api's VmRSS is sampled every 20 ms. The figure is the growth
of the peak over the RSS right before the upload (the process is warm: one
small upload first). The same file is then copied with ``cp`` and ``sync`` onto
the same disk (what the fs store does: write, fsync) in the same run, and the
upload's throughput is given as a ratio to that copy's. One JSON line per store:

    {"bench": "U1_upload", "store": "fs", "file_bytes": …, "rss_growth_mib": …,
     "target_mib": 32, "meets_target": true, "seconds": …, "mib_per_s": …,
     "cp_seconds": …, "cp_mib_per_s": …, "ratio_to_cp": …, "ok": true}

    uv run python bench/uploads.py              # 1 GiB, both stores
    uv run python bench/uploads.py --mib 64 --stores fs

With moto, the s3 throughput is moto's (a Python server), not S3's: the
memory figure is what that line is for.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.support is the process harness we reuse
    sys.path.insert(0, str(ROOT))

from procstat import rss_mib  # noqa: E402
from tests.support.control_plane import delete_namespace, fresh_database  # noqa: E402
from tests.support.processes import ProcessGroup, clean_env, free_port  # noqa: E402
from tests.support.s3 import new_bucket, s3_server, s3_settings  # noqa: E402

__all__ = ["bench_upload", "main"]

DB_URL = os.environ.get("XDP47_DB_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("XDP47_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TARGET_MIB = 32
TOKEN = "bench-upload-token"
TENANT = "bench"


def emit(line: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def make_file(path: Path, mib: int) -> str:
    """``mib`` MiB of incompressible bytes; returns their SHA256."""
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(mib):
            # Every MiB differs (a counter in front), cheaper than urandom per MiB.
            chunk = i.to_bytes(8, "big") + block[8:]
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


class RssPeak:
    """Samples a process's VmRSS in a thread; ``peak`` is the highest seen."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid) or 0.0)
            self._stop.wait(self.every)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def upload(api_url: str, path: Path, version: str) -> dict[str, Any]:
    with path.open("rb") as f:
        r = httpx.post(
            f"{api_url}/api/artifacts/upload",
            params={"tenant": TENANT, "version": version},
            headers={
                "Authorization": f"Bearer {TOKEN}",
                "Content-Type": "application/octet-stream",
            },
            content=f,
            timeout=httpx.Timeout(600, connect=10),
        )
    r.raise_for_status()
    return dict(r.json())


def cp_seconds(source: Path, dest_dir: Path) -> float:
    """``cp`` then ``sync`` of the copy: what the fs store does (write, fsync)."""
    dest = dest_dir / f"cp-{uuid.uuid4().hex}"
    start = time.perf_counter()
    subprocess.run(["cp", str(source), str(dest)], check=True)
    subprocess.run(["sync", str(dest)], check=True)
    elapsed = time.perf_counter() - start
    dest.unlink()
    return elapsed


def bench_upload(
    group: ProcessGroup,
    store: str,
    env: dict[str, str],
    source: Path,
    digest: str,
    cp_dir: Path,
) -> dict[str, Any]:
    port = free_port()
    api = group.start(
        f"api-{store}",
        "xdp47-api",
        clean_env(**env, XDP47_LISTEN_ADDR=f"127.0.0.1:{port}"),
        ready_url=f"http://127.0.0.1:{port}/readyz",
    )
    url = f"http://127.0.0.1:{port}"
    warm = source.parent / "warm.bin"
    warm.write_bytes(os.urandom(256 << 10))
    upload(url, warm, "warm")  # every code path loaded before the baseline
    size = source.stat().st_size
    before = rss_mib(api.pid) or 0.0
    with RssPeak(api.pid) as peak:
        start = time.perf_counter()
        created = upload(url, source, "big")
        seconds = time.perf_counter() - start
    growth = peak.peak - before
    cp = cp_seconds(source, cp_dir)
    api.stop()
    ok = created["sha256"] == digest and created["size"] == size
    line: dict[str, Any] = {
        "bench": "U1_upload",
        "store": store,
        "file_bytes": size,
        "ok": ok,
    }
    if not ok:
        return line | {"reason": f"stored {created['sha256']} / {created['size']}"}
    return line | {
        "rss_before_mib": round(before, 1),
        "rss_peak_mib": round(peak.peak, 1),
        "rss_growth_mib": round(growth, 1),
        "target_mib": TARGET_MIB,
        "meets_target": growth <= TARGET_MIB,
        "seconds": round(seconds, 2),
        "mib_per_s": round(size / (1 << 20) / seconds, 1),
        "cp_seconds": round(cp, 2),
        "cp_mib_per_s": round(size / (1 << 20) / cp, 1),
        "ratio_to_cp": round(cp / seconds, 3),
        "ratio_unit": "upload throughput / cp+sync throughput, same file, same disk",
    }


@contextlib.contextmanager
def workspace(parent: str | None) -> Iterator[Path]:
    # The source file, the blob dir and cp's copy share this one directory, so
    # the upload and the copy write to the same disk.
    with tempfile.TemporaryDirectory(prefix="xdp47-b6-", dir=parent) as d:
        yield Path(d)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB")
    parser.add_argument("--stores", default="fs,s3", help="comma list: fs, s3")
    parser.add_argument(
        "--dir", default=None, help="where the files go (default: the temp dir)"
    )
    args = parser.parse_args(argv)
    stores = [s for s in args.stores.split(",") if s]
    failed = False
    with workspace(args.dir) as work, ProcessGroup(work / "logs") as group:
        source = work / "artifact.bin"
        digest = make_file(source, args.mib)
        with (
            fresh_database(DB_URL, work / "logs", "xdp47_b6") as db_url,
            s3_server(work / "logs") as s3,
        ):
            namespace = f"b6{uuid.uuid4().hex[:8]}"
            common = {
                "XDP47_ENV": "development",
                "XDP47_DEV_TOKEN_ENABLED": "true",
                "XDP47_AGENT_TOKEN": TOKEN,
                "XDP47_DEV_TENANT": TENANT,
                "XDP47_DB_URL": db_url,
                "XDP47_AMQP_URL": AMQP_URL,
                "XDP47_AMQP_NAMESPACE": namespace,
                "XDP47_MAX_UPLOAD_BYTES": str(source.stat().st_size + (1 << 20)),
                "XDP47_RATE_LIMIT": "off",
            }
            try:
                for store in stores:
                    if store == "fs":
                        env = common | {"XDP47_BLOB_DIR": str(work / "blobs")}
                    else:
                        env = common | s3_settings(s3, new_bucket(s3))
                    line = bench_upload(group, store, env, source, digest, work)
                    failed |= not line["ok"]
                    emit(line)
            finally:
                group.stop_all()
                delete_namespace(AMQP_URL, namespace)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
