"""Owners and their API keys. Keys are random and kept only as SHA-256 hashes."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from vidq.clock import utcnow
from vidq.db.database import Database
from vidq.db.models import ApiKey, Owner, table_of
from vidq.errors import Conflict

owners = table_of(Owner)
api_keys = table_of(ApiKey)

KEY_PREFIX = "vq_"


@dataclass(frozen=True)
class Account:
    """The owner behind an API key."""

    id: str
    name: str
    webhook_secret: str


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
    """The owner of an API key, or None for an unknown key."""
    stmt = (
        select(owners.c.id, owners.c.name, owners.c.webhook_secret)
        .join(api_keys, api_keys.c.owner_id == owners.c.id)
        .where(api_keys.c.key_hash == hash_key(key))
    )
    async with db.read() as conn:
        row = (await conn.execute(stmt)).first()
    return Account(*row) if row else None


async def owner_count(db: Database) -> int:
    """How many owners exist."""
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(owners))).scalar_one())
