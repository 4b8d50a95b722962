"""Whatever a client sends is read strictly, by class, against a live server and real uploads.

Each test covers one class of input that once got through (or answered 500), with
several members of the class, in every form of the request that carries it:

1. JSON that is not strict JSON, and text that is not UTF-8: `422 invalid_option`
   naming the field; what is accepted (deep-but-allowed nesting, emoji, escaped pairs)
   stays strict JSON in GET /job/{id}, GET /jobs and the webhook body.
2. Numbers out of every range or grammar (huge, `1e309`, `nan`, `-0`, `0x10`, `1_000`,
   full-width digits, `+5`): `422 invalid_option` naming the field.
3. A signed link's `expires` and `signature` of the wrong shape: `401`, like a wrong
   signature; a job id that is not a UUID: `404` on every job route.
4. The Idempotency-Key payload includes the file's name.

One server serves the module; the few jobs that are accepted are deleted again, so the
queue stays short.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from vidq.api.http import single_range
from vidq.errors import RangeNotSatisfiable
from vidq.media.probe import MediaInfo

from .conftest import LiveServer, make_settings, module_server, running_server
from .helpers import assert_problem, wait_done, wait_for
from .notify_receivers import WebhookReceiver

BOUNDARY = "vidq-hardening-boundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server for the module; webhooks to loopback allowed for the receiver."""
    # Every test here sends its requests with the one key, hundreds in all: no rate limit.
    folder = tmp_path_factory.mktemp("server")
    with module_server(folder, webhook_allow_private=True, rate_limit_per_second=0) as live:
        yield live


@pytest.fixture(scope="module")
def clip_bytes(clip: Path) -> bytes:
    return clip.read_bytes()


def strict_json(body: bytes) -> Any:
    """The value of a body that is strict JSON: UTF-8, finite numbers, no lone surrogate."""
    text = body.decode("utf-8")  # strict: invalid UTF-8 raises

    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a JSON answer")

    value = json.loads(text, parse_constant=refuse)
    json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return value


def multipart(
    data: bytes, fields: list[tuple[bytes, bytes]], filename: bytes = b"clip.mp4"
) -> tuple[bytes, dict[str, str]]:
    """A multipart body built from raw bytes (httpx would encode text as UTF-8 itself)."""
    body = b""
    for name, value in fields:
        body += (
            f"--{BOUNDARY}\r\n".encode()
            + b'Content-Disposition: form-data; name="'
            + name
            + b'"\r\n\r\n'
            + value
            + b"\r\n"
        )
    body += (
        f"--{BOUNDARY}\r\n".encode()
        + b'Content-Disposition: form-data; name="file"; filename="'
        + filename
        + b'"\r\nContent-Type: video/mp4\r\n\r\n'
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}


def upload(client: httpx.Client, data: bytes, form: str, **fields: str) -> httpx.Response:
    """POST /convert with text fields, as multipart or as a raw body with the query."""
    if form == "multipart":
        return client.post("/convert", files={"file": ("clip.mp4", data, "video/mp4")}, data=fields)
    return client.post(
        "/convert", params=fields, content=data, headers={"Content-Type": "video/mp4"}
    )


def raw_upload(client: httpx.Client, data: bytes, query: str, **headers: str) -> httpx.Response:
    """POST /convert with a raw body and a query written out by hand (percent escapes kept)."""
    return client.post(
        "/convert?" + query, content=data, headers={"Content-Type": "video/mp4", **headers}
    )


def refused_field(response: httpx.Response) -> str:
    """The one field a `422 invalid_option` names."""
    problem = assert_problem(response, 422, "invalid_option")
    fields = [error["field"] for error in problem["errors"]]
    assert len(fields) == 1, problem
    return str(fields[0])


def nested(depth: int) -> str:
    """A metadata object whose arrays and objects nest exactly `depth` levels."""
    return '{"d": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


# -- 1. JSON that is not strict JSON, text that is not UTF-8 ----------------------------------


NOT_STRICT_METADATA = [
    '{"a": NaN}',
    '{"a": Infinity}',
    '{"a": -Infinity}',
    '{"a": [1, 2, NaN]}',
    '{"a": 1e309}',
    '{"a": -1E400}',
    '{"a": "\\ud800"}',  # a lone high surrogate, as a JSON escape
    '{"a": "\\udfff"}',  # a lone low surrogate
    '{"a": "\\ude00\\ud83d"}',  # a pair the wrong way round
    '{"\\ud800": 1}',  # in a key
    pytest.param(nested(33), id="nested-33"),  # one level past the limit
    pytest.param(nested(300), id="nested-300"),
    # Deep enough to break a recursive parser, still under 4 KiB.
    pytest.param('{"d": ' + "[" * 2000 + "]" * 2000 + "}", id="nested-2001"),
    '{"a": 1, "a": 2}',  # a key twice: cannot be returned unchanged
]


@pytest.mark.parametrize("form", ["multipart", "raw"])
@pytest.mark.parametrize("metadata", NOT_STRICT_METADATA)
def test_json_that_is_not_strict_json_is_refused(
    server: LiveServer, clip_bytes: bytes, form: str, metadata: str
) -> None:
    with server.client() as client:
        response = upload(client, clip_bytes, form, metadata=metadata)
        assert refused_field(response) == "metadata"
        strict_json(client.get("/jobs").content)


def test_metadata_that_does_not_parse_is_refused_naming_it(
    server: LiveServer, clip_bytes: bytes
) -> None:
    with server.client() as client:
        for metadata in ('{"a": ', "{'a': 1}", '{"a": 01}', '\ufeff{"a": 1}', '{"a": "\x01"}'):
            assert refused_field(upload(client, clip_bytes, "multipart", metadata=metadata)) == (
                "metadata"
            )


# Text that is not UTF-8, in every place a /convert carries text: (where, how, field).
NOT_TEXT_RAW = [
    ("metadata=%7B%22a%22%3A%22%ED%A0%80%22%7D", "metadata"),  # an encoded surrogate
    ("metadata=%7B%22a%22%3A%22%FF%22%7D", "metadata"),
    ("preset=mp4-h264%FF", "preset"),
    ("format=%C3", "format"),  # a truncated sequence
    ("webhook_url=http%3A%2F%2Fexample.com%2F%ED%BF%BF", "webhook_url"),
    ("email=a%C0%AF%40example.com", "email"),  # an overlong encoding
    ("filename=%ED%A0%80.mp4", "filename"),
    ("filename=clip%FF.mp4", "filename"),
]


@pytest.mark.parametrize(("query", "field"), NOT_TEXT_RAW)
def test_query_text_that_is_not_utf8_is_refused_naming_the_field(
    server: LiveServer, clip_bytes: bytes, query: str, field: str
) -> None:
    with server.client() as client:
        assert refused_field(raw_upload(client, clip_bytes, query)) == field


def test_a_query_name_that_is_not_utf8_is_refused(server: LiveServer, clip_bytes: bytes) -> None:
    with server.client() as client:
        field = refused_field(raw_upload(client, clip_bytes, "wid%FFth=100"))
    assert field.startswith("wid\\") and field.endswith("th")


NOT_TEXT_MULTIPART = [
    ([(b"metadata", b'{"a": "\xed\xa0\x80"}')], b"clip.mp4", "metadata"),
    ([(b"metadata", b'{"a": "\xff"}')], b"clip.mp4", "metadata"),
    ([(b"format", b"mp4\xc3")], b"clip.mp4", "format"),
    ([(b"webhook_url", b"http://example.com/\xe2\x82")], b"clip.mp4", "webhook_url"),
    ([(b"email", b"\xc0\xafa@example.com")], b"clip.mp4", "email"),
    ([], b"clip\xff.mp4", "filename"),
    ([], b"\xed\xa0\x80.mp4", "filename"),
]


@pytest.mark.parametrize(("fields", "filename", "field"), NOT_TEXT_MULTIPART)
def test_multipart_text_that_is_not_utf8_is_refused_naming_the_field(
    server: LiveServer,
    clip_bytes: bytes,
    fields: list[tuple[bytes, bytes]],
    filename: bytes,
    field: str,
) -> None:
    body, headers = multipart(clip_bytes, fields, filename)
    with server.client() as client:
        assert refused_field(client.post("/convert", content=body, headers=headers)) == field
        strict_json(client.get("/jobs").content)


# Accepted edge values: each must come back unchanged, and every answer stays strict JSON.
EDGE_METADATA = (
    # 32 levels: the outer object, 30 arrays, the innermost object.
    '{"d": ' + "[" * 30 + '{"emoji": "😀"}' + "]" * 30 + ","
    ' "pair": "\\ud83d\\ude00", "escaped": "\\u00e9\\u0000\\n", "ключ": "值",'
    ' "max": 1.7976931348623157e308, "tiny": 5e-324, "neg": -0.0, "big": 18446744073709551616,'
    ' "flags": [true, false, null], "e": {}}'
)


@pytest.fixture(params=["sqlite", "postgres"])
def edge_server(
    request: pytest.FixtureRequest, server: LiveServer, tmp_path: Path
) -> Iterator[LiveServer]:
    """The module's server (SQLite), and one on PostgreSQL where it is available."""
    if request.param == "sqlite":
        yield server
        return
    url: str = request.getfixturevalue("postgres_url")
    with running_server(make_settings(tmp_path, url, webhook_allow_private=True)) as live:
        yield live


def test_accepted_edge_json_stays_strict_everywhere(
    edge_server: LiveServer, clip_bytes: bytes
) -> None:
    server = edge_server
    expected = json.loads(EDGE_METADATA)
    with WebhookReceiver() as receiver, server.client() as client:
        multipart_job = upload(
            client, clip_bytes, "multipart", metadata=EDGE_METADATA, webhook_url=receiver.url
        )
        assert multipart_job.status_code == 202, multipart_job.text
        # The raw form, its metadata percent-encoded UTF-8 (the emoji as four bytes).
        query = f"metadata={quote(EDGE_METADATA, safe='')}&filename={quote('vidéo 😀.mp4')}"
        raw_job = raw_upload(client, clip_bytes, query)
        assert raw_job.status_code == 202, raw_job.text
        ids = []
        for response in (multipart_job, raw_job):
            job = strict_json(response.content)
            assert job["metadata"] == expected
            ids.append(job["id"])
        assert strict_json(raw_job.content)["input"]["filename"] == "vidéo 😀.mp4"
        for job_id in ids:
            done = wait_done(client, job_id)
            assert done["status"] == "completed", done
            fetched = client.get(f"/job/{job_id}")
            assert strict_json(fetched.content)["metadata"] == expected
        listed = strict_json(client.get("/jobs", params={"limit": "100"}).content)
        assert [j["metadata"] for j in listed["jobs"] if j["id"] in ids] == [expected, expected]
        wait_for(lambda: receiver.received, timeout=30, what="the webhook")
        event = strict_json(receiver.received[0].body)
        assert event["type"] == "job.completed" and event["data"]["metadata"] == expected
        for job_id in ids:
            assert client.delete(f"/job/{job_id}").status_code == 204


def test_probed_numbers_that_are_not_finite_are_shown_as_unknown() -> None:
    # A job's input and result show probed numbers; NaN there would break every answer.
    info = MediaInfo.from_json(
        {
            "container": "mp4",
            "format_name": "mov,mp4",
            "duration_seconds": float("inf"),
            "video": {"codec": "h264", "width": 16, "height": 16, "fps": float("nan")},
            "audio": None,
        }
    )
    shown = info.to_api()
    assert shown["duration_seconds"] is None and shown["video"]["fps"] is None
    strict_json(json.dumps(shown, allow_nan=False).encode())


# -- 2. numbers out of every range or grammar -------------------------------------------------


NOT_NUMBERS = [
    "9" * 400,
    "1e309",
    "1e3",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "-0",
    "-1",
    "+5",
    "0x10",
    "0b1",
    "1_000",
    "\uff11\uff12\uff18",  # 128 in full-width digits
    "\u0663",  # an Arabic-Indic digit three
    "1 2",
    "1,5",
]
NUMERIC_OPTIONS = ["width", "height", "crf", "fps", "start", "end"]
NOT_BITRATES = [
    "9" * 400 + "k",
    "1e309",
    "1e3k",
    "nank",
    "infM",
    "-128k",
    "+128k",
    "0x10k",
    "1_000k",
    "\uff11\uff12\uff18k",
    "128 k",
    "1.5e3M",
]


@pytest.mark.parametrize("form", ["multipart", "raw"])
@pytest.mark.parametrize("option", [*NUMERIC_OPTIONS, "video_bitrate", "audio_bitrate"])
def test_numbers_outside_the_grammar_or_range_are_refused(
    server: LiveServer, clip_bytes: bytes, form: str, option: str
) -> None:
    values = NOT_BITRATES if option.endswith("bitrate") else NOT_NUMBERS
    with server.client() as client:
        for value in values:
            response = upload(client, clip_bytes, form, **{option: value})
            assert refused_field(response) == option, (option, value)


@pytest.mark.parametrize(
    ("option", "value", "kept"),
    [
        ("width", "0160", 160),  # leading zeros are still plain digits
        ("crf", " 23 ", 23),  # surrounding whitespace is trimmed, as for every option
        ("fps", "29.97", 29.97),
        ("start", "0.25", 0.25),
        ("end", "0.75", 0.75),
        ("video_bitrate", "1.5M", "1500k"),
        ("audio_bitrate", "96000", "96k"),
    ],
)
def test_numbers_in_the_grammar_are_accepted(
    server: LiveServer, clip_bytes: bytes, option: str, value: str, kept: object
) -> None:
    with server.client() as client:
        # transcode=always: a width equal to the clip's own would otherwise be a remux,
        # whose options drop the size.
        response = upload(client, clip_bytes, "raw", transcode="always", **{option: value})
        assert response.status_code == 202, response.text
        job = strict_json(response.content)
        assert job["options"][option] == kept
        assert client.delete(f"/job/{job['id']}").status_code == 204


NOT_WAITS = ["nan", "inf", "-1", "0", "-0", "61", "60.5", "1e1", "+5", "1_0", "\uff15", "0x10"]
NOT_LIMITS = [
    "nan",
    "inf",
    "0",
    "-0",
    "101",
    "9" * 400,
    "1e1",
    "+5",
    "1_0",
    "\uff15",
    "10.0",
    "0x10",
]


def test_numeric_query_parameters_are_read_strictly(server: LiveServer) -> None:
    with server.client() as client:
        job_path = f"/job/{uuid.uuid4()}"
        for value in [*NOT_WAITS, "9" * 400]:
            response = client.get(job_path, params={"wait": value})
            assert refused_field(response) == "wait", value
        for value in NOT_LIMITS:
            response = client.get("/jobs", params={"limit": value})
            assert refused_field(response) == "limit", value
        for value in ("1", " 100 ", "007"):
            assert client.get("/jobs", params={"limit": value}).status_code == 200, value
        assert_problem(client.get(job_path, params={"wait": "0.1"}), 404, "not_found")
        # A cursor is a number too: never one the database cannot hold.
        for text in ("9" * 40, "-1", "0", "1_0", "\uff11", " 1"):
            cursor = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
            assert refused_field(client.get("/jobs", params={"cursor": cursor})) == "cursor"
        for cursor in ("é", "%ED%A0%80", "M", "M Q"):
            assert refused_field(client.get("/jobs", params={"cursor": cursor})) == "cursor"


# -- 3. signed-link parameters and job ids that are not what they claim -----------------------


@pytest.fixture(scope="module")
def completed(server: LiveServer, clip: Path) -> dict[str, Any]:
    """A completed job, for its signed link."""
    with server.client() as client:
        response = upload(client, clip.read_bytes(), "multipart")
        assert response.status_code == 202, response.text
        job = wait_done(client, response.json()["id"])
    assert job["status"] == "completed", job
    return job


def _link_params(job: dict[str, Any]) -> tuple[str, str, str]:
    url = httpx.URL(job["result"]["download_url"])
    return url.path, url.params["expires"], url.params["signature"]


def test_signed_link_parameters_of_the_wrong_shape_are_401(
    server: LiveServer, completed: dict[str, Any]
) -> None:
    path, expires, signature = _link_params(completed)
    bad_signatures = [
        "é" * 43,
        "%ED%A0%80" * 5,
        "%00" * 43,
        signature[:-1],
        signature + "A",
        "%2B" + signature[1:],  # the standard base64 alphabet, not base64url
        signature[:-1] + "%2F",
        signature + "=",
        " " + signature,
        "",
        "A" * 10_000,
    ]
    bad_expires = [
        "",
        "-1",
        "+" + expires,
        expires + ".0",
        "0" + expires,
        "1e10",
        "9" * 400,
        "nan",
        hex(int(expires)),
        "".join(chr(ord(d) + 0xFEE0) for d in expires),  # the same, in full-width digits
        expires + "%00",
        "%ED%A0%80",
    ]
    with httpx.Client(base_url=server.url) as anyone:
        for bad in bad_signatures:
            response = anyone.get(f"{path}?expires={expires}&signature={bad}")
            assert_problem(response, 401, "unauthorized")
        for bad in bad_expires:
            response = anyone.get(f"{path}?expires={bad}&signature={signature}")
            assert_problem(response, 401, "unauthorized")
        # The connection survived all of it, and the real link still works.
        good = anyone.get(f"{path}?expires={expires}&signature={signature}")
        assert good.status_code == 200 and good.content


def test_a_range_of_thousands_of_digits_is_past_the_end_not_an_error() -> None:
    # Served by vidq itself when the output is in a bucket (a local file: Starlette's own).
    with pytest.raises(RangeNotSatisfiable):
        single_range("bytes=" + "9" * 5000 + "-", 100)
    assert single_range("bytes=10-" + "9" * 5000, 100) == (10, 99)
    assert single_range("bytes=-" + "9" * 5000, 100) == (0, 99)


NOT_JOB_IDS = [
    "x",
    "%00",
    "%FF",
    "%ED%A0%80",
    "%F0%9F%98%80",
    "a" * 5000,
    "00000000-0000-0000-0000-00000000000g",
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    "00000000000000000000000000000000",
    "'%20OR%201=1%20--",
    "%2E%2E",
]


def test_job_ids_that_are_not_uuids_are_404_on_every_route(
    server: LiveServer, completed: dict[str, Any]
) -> None:
    _, expires, signature = _link_params(completed)
    upper = completed["id"].upper()  # the same UUID, not as the server writes it
    with server.client() as client, httpx.Client(base_url=server.url) as anyone:
        for job_id in [*NOT_JOB_IDS, upper]:
            for method, path, params in (
                ("GET", f"/job/{job_id}", {}),
                ("GET", f"/job/{job_id}", {"wait": "1"}),
                ("DELETE", f"/job/{job_id}", {}),
                ("POST", f"/job/{job_id}/cancel", {}),
                ("GET", f"/job/{job_id}/output", {}),
            ):
                response = client.request(method, path, params=params)
                assert_problem(response, 404, "not_found")
            assert client.head(f"/job/{job_id}/output").status_code == 404
            signed = f"/job/{job_id}/output?expires={expires}&signature={signature}"
            assert_problem(anyone.get(signed), 404, "not_found")
            # Without a key or a link, a job route still asks for credentials first.
            assert_problem(anyone.get(f"/job/{job_id}"), 401, "unauthorized")
        assert client.get(f"/job/{completed['id']}").status_code == 200


# -- 4. the Idempotency-Key payload includes the file's name ----------------------------------


@pytest.mark.parametrize("form", ["multipart", "raw"])
def test_the_same_idempotency_key_with_another_filename_is_another_payload(
    server: LiveServer, clip_bytes: bytes, form: str
) -> None:
    key = f"key-{form}-{time.monotonic_ns()}"

    def send(filename: str | None) -> httpx.Response:
        headers = {"Idempotency-Key": key}
        if form == "raw":
            params = {} if filename is None else {"filename": filename}
            return client.post(
                "/convert",
                params={"preset": "mp4-h264", **params},
                content=clip_bytes,
                headers={"Content-Type": "video/mp4", **headers},
            )
        return client.post(
            "/convert",
            files={"file": (filename, clip_bytes, "video/mp4")},
            data={"preset": "mp4-h264"},
            headers=headers,
        )

    with server.client() as client:
        first = send("a.mp4")
        assert first.status_code == 202, first.text
        for other in ("b.mp4", "A.mp4", "a.mp4 ", "dir/a.mp4", "a.MP4"):
            assert_problem(send(other), 422, "idempotency_key_reused")
        if form == "raw":
            assert_problem(send(None), 422, "idempotency_key_reused")
        again = send("a.mp4")
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert client.delete(f"/job/{first.json()['id']}").status_code == 204
