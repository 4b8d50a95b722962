"""Prometheus metrics of this process. Gauges of the whole queue are read at scrape time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

JOBS_BY_STATUS = Gauge("vidq_jobs", "Jobs by status", ["status"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("vidq_queue_depth", "Jobs waiting in the queue", registry=REGISTRY)
QUEUE_OLDEST_AGE = Gauge(
    "vidq_queue_oldest_age_seconds",
    "Seconds the oldest job waiting in the queue has waited since it was submitted (0: none waits)",
    registry=REGISTRY,
)
WORKER_SLOTS = Gauge(
    "vidq_worker_slots", "Conversions this process may run at once", registry=REGISTRY
)
UPLOADS = Counter(
    "vidq_uploads_total", "Uploads received, by outcome", ["outcome"], registry=REGISTRY
)
IMPORTS = Counter(
    "vidq_imports_total",
    "Inputs fetched from a source_url, by outcome: fetched, failed",
    ["outcome"],
    registry=REGISTRY,
)
UPLOAD_BYTES = Counter("vidq_upload_bytes_total", "Bytes of accepted uploads", registry=REGISTRY)
PROCESSING_SECONDS = Histogram(
    "vidq_processing_seconds",
    "Time from a job's start to its end, by outcome",
    ["status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    registry=REGISTRY,
)
CONVERSIONS_RUNNING = Gauge(
    "vidq_conversions_running", "Conversions running in this process", registry=REGISTRY
)
NOTIFICATIONS = Counter(
    "vidq_notification_attempts_total",
    "Webhook and email delivery attempts, by channel and outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
CONNECTIONS_CLOSED = Counter(
    "vidq_connections_closed_total",
    "Connections the server closed to stay within its limits, by reason: busy (refused at "
    "the cap), evicted (made room at the cap), header_timeout, write_stall",
    ["reason"],
    registry=REGISTRY,
)
