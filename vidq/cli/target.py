"""Which service a client verb talks to, and with which API key.

The URL: `--url`, else `VIDQ_URL`, else `http://VIDQ_HOST:VIDQ_PORT` as `vidq serve` reads
them (127.0.0.1 and 8000 by default; a server listening on every address is reached on
loopback). The key: `--key`, else `VIDQ_KEY`, else the `api-key` file `vidq serve` wrote
in `VIDQ_DATA_DIR` (default ./vidq-data). Each is remembered with where it came from, so
that an error can say what to change.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vidq.cli.failures import USAGE, CommandFailed
from vidq.client import VidqClient
from vidq.datadir import API_KEY_FILE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = "8000"
DEFAULT_DATA_DIR = "vidq-data"
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True)
class Target:
    """A service's URL and an API key, each with where it came from."""

    url: str
    url_source: str
    key: str
    key_source: str

    def client(self) -> VidqClient:
        return VidqClient(self.url, self.key)


def resolve_url(flag: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The service's URL and where it came from."""
    if flag:
        return flag.rstrip("/"), "URL from --url"
    if env.get("VIDQ_URL"):
        return env["VIDQ_URL"].rstrip("/"), "URL from VIDQ_URL"
    host = env.get("VIDQ_HOST", DEFAULT_HOST).strip()
    host = _ANY_ADDRESS.get(host, host)
    port = env.get("VIDQ_PORT", DEFAULT_PORT).strip()
    shown = f"[{host}]" if ":" in host else host
    if "VIDQ_HOST" in env or "VIDQ_PORT" in env:
        source = "URL from VIDQ_HOST and VIDQ_PORT"
    else:
        source = "the default URL"
    return f"http://{shown}:{port}", source


def resolve_key(flag: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The API key and where it came from; CommandFailed (usage) when there is none."""
    if flag:
        return flag.strip(), "from --key"
    for name in ("VIDQ_KEY", "VIDQ_API_KEY"):  # the second: its name in vidq 0.1
        if env.get(name):
            return env[name].strip(), f"from {name}"
    key_file = Path(env.get("VIDQ_DATA_DIR") or DEFAULT_DATA_DIR) / API_KEY_FILE
    try:
        key = key_file.read_text().strip()
    except FileNotFoundError:
        key = ""
    except OSError as exc:
        raise CommandFailed(
            f"Cannot read the API key in {key_file}: {exc.strerror}.", USAGE
        ) from exc
    if not key:
        raise CommandFailed(
            f"No API key: pass --key, set VIDQ_KEY, or run where {key_file} is "
            "(vidq serve writes it on its first start; VIDQ_DATA_DIR names its folder).",
            USAGE,
        )
    return key, f"from {key_file}"


def target_of(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Target:
    """The Target a client verb's arguments and the environment name."""
    env = os.environ if env is None else env
    url, url_source = resolve_url(args.url, env)
    key, key_source = resolve_key(args.key, env)
    return Target(url, url_source, key, key_source)
