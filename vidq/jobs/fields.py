"""A /convert request's fields, checked: conversion options, notification targets, metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from vidq.config import Settings
from vidq.errors import InvalidOption, WebhookTargetError
from vidq.jobs.options import ResolvedOptions, check_option_alone, resolve_options
from vidq.jobs.strict import (
    NOT_TEXT,
    JSONNotParsed,
    JSONNotStrict,
    field_label,
    is_text,
    parse_json,
)
from vidq.notify.targets import check_webhook_url, parse_webhook_url

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
                parse_webhook_url(value)
            except WebhookTargetError as exc:
                raise InvalidOption.field("webhook_url", str(exc)) from exc
    elif name == "email":
        _email(value, settings)
    elif name == "metadata":
        _metadata(value)
    else:
        check_option_alone(name, value)


async def check_fields(
    fields: Mapping[str, str], settings: Settings, *, filename: str | None = None
) -> CheckedFields:
    """Check every field of a /convert request (and the upload's name as sent, which is
    only checked as text); InvalidOption lists all that are wrong."""
    errors = _text_errors(fields, filename)
    # A field that is not text is only named: its value never reaches a parser or a message.
    fields = {k: v for k, v in fields.items() if is_text(k) and is_text(v)}
    option_fields = {k: v for k, v in fields.items() if k not in NON_OPTION_FIELDS}
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
            webhook_url = await check_webhook_url(
                raw_url, allow_private=settings.webhook_allow_private
            )
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
