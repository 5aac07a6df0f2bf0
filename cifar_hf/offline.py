"""Is the Hub reachable? Asked once: an offline machine gets one line at once, not a minute of retries."""

import os
import socket
from urllib.parse import urlparse

import huggingface_hub


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
