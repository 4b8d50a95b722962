"""Owners and their API keys. Keys are random and kept only as SHA-256 hashes.

A key's id, as `vidq keys list` shows it and `vidq keys revoke` takes it, is the first
12 hex digits of that hash: it names the key without revealing anything of it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import ApiKey, Owner, table_of
from vidq.errors import Conflict, NotFound

owners = table_of(Owner)
api_keys = table_of(ApiKey)

KEY_PREFIX = "vq_"
KEY_ID_DIGITS = 12
MIN_KEY_ID_DIGITS = 8
# How stale `last_used_at` may be: a key's use is written at most this often.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Account:
    """The owner behind an API key."""

    id: str
    name: str
    webhook_secret: str


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of an API key: never the key itself."""

    key_id: str
    owner: str
    created_at: datetime
    last_used_at: datetime | None


def key_id_of(key_hash: str) -> str:
    """The short id of the key whose hash this is."""
    return key_hash[:KEY_ID_DIGITS]


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> str:
    """A fresh API key: 32 random bytes, URL-safe."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def create_owner(db: Database, name: str) -> tuple[Account, str]:
    """A new owner with one API key; returns the account and the key (shown only now)."""
    key = new_api_key()
    account = Account(id=str(uuid.uuid4()), name=name, webhook_secret=new_webhook_secret())
    now = utcnow()
    try:
        async with db.write() as conn:
            await conn.execute(
                insert(owners).values(
                    id=account.id,
                    name=account.name,
                    webhook_secret=account.webhook_secret,
                    created_at=now,
                )
            )
            await conn.execute(
                insert(api_keys).values(key_hash=hash_key(key), owner_id=account.id, created_at=now)
            )
    except IntegrityError as exc:
        raise Conflict(f"An owner named {name!r} already exists.") from exc
    return account, key


async def add_key(db: Database, name: str) -> tuple[Account, str]:
    """Another API key for an existing owner, or a new owner if there is none of that name."""
    async with db.read() as conn:
        row = (await conn.execute(select(owners).where(owners.c.name == name))).mappings().first()
    if row is None:
        return await create_owner(db, name)
    key = new_api_key()
    async with db.write() as conn:
        await conn.execute(
            insert(api_keys).values(key_hash=hash_key(key), owner_id=row["id"], created_at=utcnow())
        )
    return Account(row["id"], row["name"], row["webhook_secret"]), key


async def account_for_key(db: Database, key: str) -> Account | None:
    """The owner of an API key, or None for an unknown key; notes the key's use (at most
    once a minute, so that a busy key costs one small write a minute)."""
    key_hash = hash_key(key)
    stmt = (
        select(owners.c.id, owners.c.name, owners.c.webhook_secret, api_keys.c.last_used_at)
        .join(api_keys, api_keys.c.owner_id == owners.c.id)
        .where(api_keys.c.key_hash == key_hash)
    )
    async with db.read() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    now = utcnow()
    last_used_at: datetime | None = row.last_used_at
    if last_used_at is None or now - last_used_at >= LAST_USED_RESOLUTION:
        await _note_use(db, key_hash, now)
    return Account(row.id, row.name, row.webhook_secret)


async def _note_use(db: Database, key_hash: str, now: datetime) -> None:
    stale = now - LAST_USED_RESOLUTION
    async with db.write() as conn:
        await conn.execute(
            update(api_keys)
            .where(api_keys.c.key_hash == key_hash)
            # Another process may have written it meanwhile: then this writes nothing.
            .where(or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at <= stale))
            .values(last_used_at=now)
        )


async def list_keys(db: Database) -> list[KeyInfo]:
    """Every API key (its id, never the key), by owner, oldest first."""
    stmt = (
        select(owners.c.name, api_keys.c.key_hash, api_keys.c.created_at, api_keys.c.last_used_at)
        .join(owners, owners.c.id == api_keys.c.owner_id)
        .order_by(owners.c.name, api_keys.c.created_at, api_keys.c.key_hash)
    )
    async with db.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [
        KeyInfo(key_id_of(row.key_hash), row.name, row.created_at, row.last_used_at) for row in rows
    ]


def _hash_pattern(key_or_id: str) -> str:
    """A LIKE pattern for the hashes `key_or_id` may name: an id (or a longer prefix of the
    hash, at least MIN_KEY_ID_DIGITS hex digits), or a whole key."""
    if key_or_id.startswith(KEY_PREFIX):
        return hash_key(key_or_id)
    wanted = key_or_id.strip().lower()
    if len(wanted) < MIN_KEY_ID_DIGITS or any(c not in "0123456789abcdef" for c in wanted):
        raise NotFound(f"{key_or_id!r} is not a key id: ids are {KEY_ID_DIGITS} hex digits.")
    return wanted + "%"


async def revoke_key(db: Database, key_or_id: str) -> KeyInfo:
    """Delete the API key with this id (or this key); requests with it are refused from now
    on. NotFound if no key has it, Conflict if several do."""
    pattern = _hash_pattern(key_or_id)
    stmt = (
        select(owners.c.name, api_keys.c.key_hash, api_keys.c.created_at, api_keys.c.last_used_at)
        .join(owners, owners.c.id == api_keys.c.owner_id)
        .where(api_keys.c.key_hash.like(pattern))
        .limit(2)
    )
    async with db.write() as conn:
        rows = (await conn.execute(stmt)).all()
        if not rows:
            raise NotFound(f"No API key has the id {key_or_id!r}.")
        if len(rows) > 1:
            raise Conflict(f"More than one API key has an id starting with {key_or_id!r}.")
        row = rows[0]
        await conn.execute(delete(api_keys).where(api_keys.c.key_hash == row.key_hash))
    return KeyInfo(key_id_of(row.key_hash), row.name, row.created_at, row.last_used_at)


async def owner_count(db: Database) -> int:
    """How many owners exist."""
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(owners))).scalar_one())
