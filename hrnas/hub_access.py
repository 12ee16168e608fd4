"""Reaching the Hugging Face Hub quickly or not at all.

Without network, ``huggingface_hub`` retries each request with back-off (about 47 s measured here for one weights
request) before it gives up, even when the files are in the local cache. A weights request in hrnas asks once,
with a short timeout, whether the Hub answers at all; when it does not (or ``HF_HUB_OFFLINE`` is set), weights
come from the local cache or fail at once with the usual message.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Optional
from urllib.parse import urlparse

__all__ = ["REACH_TIMEOUT_S", "cached_file", "cached_snapshot", "hub_offline", "hub_reachable"]

REACH_TIMEOUT_S = 3.0


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (as huggingface_hub reads it)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub's endpoint (``HF_ENDPOINT``) opens within ``timeout`` seconds.

    Name resolution has no timeout of its own, so the whole check runs in a daemon thread that is abandoned when it
    takes too long.
    """
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    answer: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answer.append(True)
        except OSError:
            answer.append(False)

    worker = threading.Thread(target=connect, daemon=True, name="hrnas-hub-check")
    worker.start()
    worker.join(timeout)
    return bool(answer and answer[0])


def cached_file(repo_id: str, filename: str) -> Optional[str]:
    """The path of ``filename`` of ``repo_id`` in the local Hub cache, or ``None`` (no network is used)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename)
    return path if isinstance(path, str) and os.path.isfile(path) else None


def cached_snapshot(repo_id: str) -> Optional[str]:
    """The local snapshot directory of ``repo_id`` (config.json and weights), or ``None`` (no network is used)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(repo_id, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    return path if os.path.isfile(os.path.join(path, "config.json")) else None
