"""A /convert request's fields, checked: conversion options, notification targets, metadata,
and the URL of an input to import."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from email_validator import EmailNotValidError, validate_email

from vidq.config import Settings
from vidq.errors import InvalidOption, InvalidSource, TargetError, TargetRefused, TargetUnresolved
from vidq.jobs import overlays
from vidq.jobs.options import ResolvedOptions, check_option_alone, resolve_options
from vidq.jobs.strict import (
    NOT_TEXT,
    JSONNotParsed,
    JSONNotStrict,
    field_label,
    is_text,
    parse_json,
)
from vidq.outbound.targets import AddressPolicy, parse_target_url, resolve_target

MAX_METADATA_BYTES = 4096
MAX_URL_CHARS = 2048
NON_OPTION_FIELDS = ("webhook_url", "email", "metadata")


@dataclass(frozen=True)
class CheckedFields:
    """What a client asked for besides the file."""

    options: ResolvedOptions
    webhook_url: str | None
    email: str | None
    metadata: dict[str, Any]


async def check_webhook_url(url: str, policy: AddressPolicy) -> str:
    """The URL if it is an acceptable webhook target; InvalidOption otherwise."""
    try:
        await resolve_target(url, policy)
    except (TargetRefused, TargetUnresolved) as exc:
        raise InvalidOption.field("webhook_url", str(exc)) from exc
    return url


async def check_source_url(url: str, policy: AddressPolicy) -> str:
    """The URL if an input may be imported from it (checked again at each connection);
    InvalidSource otherwise."""
    if len(url) > MAX_URL_CHARS:
        raise InvalidSource(f"source_url must be at most {MAX_URL_CHARS} characters.")
    try:
        await resolve_target(url, policy)
    except (TargetRefused, TargetUnresolved) as exc:
        raise InvalidSource(f"source_url {exc}.") from exc
    return url


def _json_text(name: str, value: Any) -> str | None:
    """One member of a JSON request as the text the same field has in a form (None: absent).

    Strings are taken as they are; numbers are written in plain decimal digits (so `2.5`,
    `1e1` and `"2.5"` mean the same, and the option's own rules then apply: no sign, …);
    booleans are `true`/`false`; `null` is as if the member were not there; `metadata`
    may be an object (or a string holding one), `renditions` an array of numbers.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    if isinstance(value, str):
        return value
    if name == "metadata" and isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if name == "renditions" and isinstance(value, list):
        parts = [_json_text(name, item) for item in value]
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return ",".join(part or "" for part in parts)
        raise InvalidOption.field(name, "must be an array of whole numbers, or a string")
    kind = "an object" if name == "metadata" else "a string, number or boolean"
    raise InvalidOption.field(field_label(name), f"must be {kind}")


async def check_json_fields(
    members: Mapping[str, Any], settings: Settings
) -> tuple[dict[str, str], CheckedFields]:
    """The fields of a JSON /convert request (an object of options) as form fields are, and
    them checked; InvalidOption lists every member that is wrong, by type or by value."""
    fields: dict[str, str] = {}
    errors: list[dict[str, str]] = []
    for name, value in members.items():
        try:
            text = _json_text(name, value)
        except InvalidOption as exc:
            errors.extend(exc.errors)
            continue
        if text is not None:
            fields[name] = text
    try:
        checked = await check_fields(fields, settings)
    except InvalidOption as exc:
        errors.extend(exc.errors)
    if errors:
        raise InvalidOption(errors=errors)
    return fields, checked


def _metadata(raw: str | None) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise InvalidOption.field("metadata", f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
    try:
        value = parse_json(raw)
    except JSONNotParsed as exc:
        raise InvalidOption.field("metadata", "must be a JSON object") from exc
    except JSONNotStrict as exc:
        raise InvalidOption.field("metadata", f"must be a strict JSON object: it {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidOption.field("metadata", "must be a JSON object")
    return value


def _text_errors(fields: Mapping[str, str], filename: str | None) -> list[dict[str, str]]:
    """A `NOT_TEXT` error for each field whose name or value is not valid text."""
    errors = [
        {"field": field_label(name), "message": NOT_TEXT}
        for name, value in fields.items()
        if not (is_text(name) and is_text(value))
    ]
    if filename is not None and not is_text(filename):
        errors.append({"field": "filename", "message": NOT_TEXT})
    return errors


def _email(raw: str | None, settings: Settings) -> str | None:
    if raw is None or raw == "":
        return None
    if not settings.smtp_url:
        raise InvalidOption.field("email", "this server has no SMTP server configured")
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidOption.field("email", f"is not a valid address: {exc}") from exc


def check_field_alone(name: str, value: str, settings: Settings) -> None:
    """InvalidOption if this one field of a /convert request is wrong whatever the others
    say, so that a form can be refused as soon as the field arrives, before its file. The
    webhook URL is only parsed here: its host is resolved by `check_fields`."""
    if not (is_text(name) and is_text(value)):
        raise InvalidOption.field(field_label(name), NOT_TEXT)
    if name == "webhook_url":
        if len(value) > MAX_URL_CHARS:
            raise InvalidOption.field("webhook_url", f"must be at most {MAX_URL_CHARS} characters")
        if value:
            try:
                parse_target_url(value)
            except TargetError as exc:
                raise InvalidOption.field("webhook_url", str(exc)) from exc
    elif name == "email":
        _email(value, settings)
    elif name == "metadata":
        _metadata(value)
    elif not overlays.check_field_alone(name, value):
        check_option_alone(name, value)


async def check_fields(
    fields: Mapping[str, str],
    settings: Settings,
    *,
    filename: str | None = None,
    attached: Collection[str] = (),
) -> CheckedFields:
    """Check every field of a /convert request (and the upload's name as sent, which is
    only checked as text; `attached`: the overlay parts that came with it, by role);
    InvalidOption lists all that are wrong."""
    errors = _text_errors(fields, filename)
    # A field that is not text is only named: its value never reaches a parser or a message.
    fields = {k: v for k, v in fields.items() if is_text(k) and is_text(v)}
    option_fields = {k: v for k, v in fields.items() if k not in NON_OPTION_FIELDS}
    option_fields, part_errors = overlays.attachment_fields(option_fields, attached)
    errors.extend(part_errors)
    for name in overlays.UPLOAD_ID_FIELDS:
        try:
            overlays.check_upload_id_field(name, fields.get(name, ""))
        except InvalidOption as exc:
            errors.extend(exc.errors)
    options: ResolvedOptions | None = None
    try:
        options = resolve_options(option_fields)
    except InvalidOption as exc:
        errors.extend(exc.errors)
    webhook_url = email = None
    metadata: dict[str, Any] = {}
    try:
        raw_url = fields.get("webhook_url") or None
        if raw_url is not None:
            if len(raw_url) > MAX_URL_CHARS:
                raise InvalidOption.field(
                    "webhook_url", f"must be at most {MAX_URL_CHARS} characters"
                )
            webhook_url = await check_webhook_url(raw_url, settings.address_policy)
    except InvalidOption as exc:
        errors.extend(exc.errors)
    try:
        email = _email(fields.get("email"), settings)
    except InvalidOption as exc:
        errors.extend(exc.errors)
    try:
        metadata = _metadata(fields.get("metadata"))
    except InvalidOption as exc:
        errors.extend(exc.errors)
    if errors or options is None:
        raise InvalidOption(errors=errors)
    return CheckedFields(options=options, webhook_url=webhook_url, email=email, metadata=metadata)
