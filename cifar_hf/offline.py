"""Hub id or local path, and is the Hub reachable? Asked once: an offline machine gets one line at once, not a
minute of the Hub client's retries."""

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub.constants  # the submodule itself: the package loads it lazily


def looks_like_path(name: str) -> bool:
    """A local path rather than a Hub id: written like one, or present on this machine."""
    return str(name).startswith((".", "/", "~")) or Path(str(name)).expanduser().exists()


def recorded_reference(name: str) -> str:
    """How a run folder records a dataset or checkpoint: a local folder by its absolute path (a relative one would
    name another folder, or a Hub id, from another directory), a Hub id as given."""
    return str(Path(str(name)).expanduser().resolve()) if looks_like_path(name) else str(name)


def is_hub_id(name) -> bool:
    """'owner/name' that is not a local path."""
    return str(name).count("/") == 1 and not looks_like_path(name)


def hub_out_of_reach() -> bool:
    """HF_HUB_OFFLINE is set, or one probe finds the Hub unreachable (and this process goes offline)."""
    return huggingface_hub.constants.HF_HUB_OFFLINE or go_offline_if_unreachable()


def go_offline_if_unreachable() -> bool:
    """One probe; when the Hub does not answer, every later Hub read of this process uses the local cache alone (as
    with HF_HUB_OFFLINE=1). True when this probe switched to offline; False when online or offline already."""
    if huggingface_hub.constants.HF_HUB_OFFLINE or hub_reachable():
        return False
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:  # datasets keeps its own copy of the setting
        sys.modules["datasets"].config.HF_HUB_OFFLINE = True
    return True


def hub_reachable(timeout_s: float = 5.0) -> bool:
    """One TCP connection to the Hub's endpoint (the Hub client would retry for about a minute before failing).

    Behind a proxy a direct connection says nothing, so the Hub counts as reachable and the client decides.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    endpoint = urlparse(huggingface_hub.constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False
