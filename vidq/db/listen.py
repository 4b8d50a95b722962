"""PostgreSQL LISTEN/NOTIFY: how the processes of a fleet wake each other instead of polling hard."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("vidq.db")

QUEUED_CHANNEL = "vidq_job_queued"
FINISHED_CHANNEL = "vidq_job_finished"
STOP_CHANNEL = "vidq_job_stop"  # a job was cancelled or deleted: its worker stops ffmpeg now
# Anything a client sees of a job changed (status, queue place, progress): live feeds re-read it.
CHANGED_CHANNEL = "vidq_job_changed"
CHANNELS = (QUEUED_CHANNEL, FINISHED_CHANNEL, STOP_CHANNEL, CHANGED_CHANNEL)
# Not a channel: passed to `on_notify` each time LISTEN starts, since whatever was announced
# while no connection listened was missed and must be treated as heard.
LISTENING = "listening"
RECONNECT_SECONDS = 2.0


async def notify(conn: AsyncConnection, channel: str, payload: str = "") -> None:
    """Send a notification (delivered when the caller's transaction commits)."""
    await conn.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


def _conninfo(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


async def listen_forever(url: str, on_notify: Callable[[str, str], None]) -> None:
    """Call `on_notify(channel, payload)` for every vidq notification; reconnect when cut off."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                _conninfo(url), autocommit=True
            ) as conn:
                for channel in CHANNELS:
                    await conn.execute(f"LISTEN {channel}")
                on_notify(LISTENING, "")
                async for message in conn.notifies():
                    on_notify(message.channel, message.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("LISTEN connection lost (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_SECONDS)
