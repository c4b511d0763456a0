"""The engine's Prometheus metrics, on a registry of its own (one per daemon)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Fan-out latency: from a decoded provider execution to its orders frame written.
_LATENCY_BUCKETS = (
    10e-6,
    25e-6,
    50e-6,
    100e-6,
    250e-6,
    500e-6,
    1e-3,
    2.5e-3,
    5e-3,
    10e-3,
    25e-3,
    50e-3,
    0.1,
)


class EngineMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.fanout_seconds = Histogram(
            "copyengine_fanout_seconds",
            "Provider execution decoded to orders frame written",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.copy_orders = Counter("copyengine_copy_orders", "Copy orders sent", registry=r)
        # one series per provider of this shard (the demo's top providers)
        self.provider_orders = Counter(
            "copyengine_provider_copy_orders", "Copy orders of provider executions", ["provider"], registry=r
        )
        self.skips = Counter("copyengine_skips", "Copies skipped, by reason", ["reason"], registry=r)
        self.clamps = Counter("copyengine_clamps", "Copies clamped, by binding cap", ["cap"], registry=r)
        self.stops = Counter("copyengine_stops", "Relationships stopped by max-loss", registry=r)
        self.fills = Counter("copyengine_fills", "Copy fill reports applied", registry=r)
        self.rejects = Counter("copyengine_rejects", "Copy rejects, by reason", ["reason"], registry=r)
        self.rule_errors = Counter(
            "copyengine_rule_errors", "Venue messages or reports refused by the copy rules", registry=r
        )
        self.protocol_errors = Counter(
            "copyengine_protocol_errors", "Connections dropped for a protocol error, by kind", ["kind"], registry=r
        )
        self.clock_corrections = Counter(
            "copyengine_clock_corrections",
            "Venue log entries stamped earlier than their predecessor (taken at its time)",
            registry=r,
        )
        self.venue_time = Gauge(
            "copyengine_venue_time_seconds",
            "Venue time of the applied log (the engine's clock), since the epoch",
            registry=r,
        )
        self.reconnects = Counter("copyengine_venue_connections", "Venue connections accepted", registry=r)
        self.connected = Gauge("copyengine_venue_connected", "1 while a venue session is live", registry=r)
        self.applied_seq = Gauge("copyengine_applied_seq", "Last applied venue seq", registry=r)
        self.seq_lag = Gauge("copyengine_seq_lag", "Venue's newest seq minus the applied seq", registry=r)
        self.pending = Gauge("copyengine_pending_orders", "Copy orders working at the venue", registry=r)
        self.control_changes = Counter(
            "copyengine_control_changes", "Control changes applied or refused by the rules", ["result"], registry=r
        )
        # the input journal (PostgreSQL write-behind)
        self.committed_seq = Gauge("copyengine_committed_seq", "Last venue seq committed to PostgreSQL", registry=r)
        self.inputs_committed = Counter(
            "copyengine_inputs_committed", "Venue messages committed to the journal", registry=r
        )
        self.commit_seconds = Histogram(
            "copyengine_commit_seconds",
            "One group commit of the journal",
            buckets=(1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.commit_failures = Counter(
            "copyengine_commit_failures", "Journal commits that failed (PostgreSQL down)", registry=r
        )
        self.uncommitted_bytes = Gauge(
            "copyengine_uncommitted_bytes", "Applied venue messages not yet committed, bytes", registry=r
        )
        self.backpressure = Gauge(
            "copyengine_backpressure", "1 while the engine stops reading from the venue for PostgreSQL", registry=r
        )
