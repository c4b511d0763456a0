//! copyengine's hot path: exact fixed-point copy sizing, risk checks and follower state.
//!
//! Pure Rust; the PyO3 layer lives in `python/` behind the `python` feature, so
//! `cargo test` needs no Python. The rules are those of `docs/scenario-format.md`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

// Values and the rules over them.
/// Deterministic client order ids.
pub mod coid;
/// Input events and their field validation.
pub mod event;
/// Exact integer helpers over raw fixed-point values.
pub mod exact;
/// Fixed-point numbers (`Qty`, `Price`, `Money`, `Factor`).
pub mod fixed;
/// Plain domain types, and the typed ids of the engine's tables (`RelId`, ...).
pub mod model;
/// Two threads for the big batches.
pub mod parallel;
/// A copy portfolio: cash, base and FIFO lots per symbol.
pub mod portfolio;
/// Risk rules: the max-loss line, `max_open_trades`, the platform's amount limits.
pub mod risk;
/// Profit-share settlement: period boundaries, labels, charges.
pub mod settlement;
/// Copy sizing and limit prices.
pub mod sizing;
/// Venue time as RFC 3339 text (µs since the epoch, UTC).
pub mod venue_time;
/// Live mode's working orders (the vocabulary is in its module comment).
pub mod working;

// The state machine.
/// The engine: state and dispatch, control, fan-out, venue reports, max-loss.
pub mod engine;

// Its inputs and outputs.
/// The control plane's rules (which changes, at which input position).
pub mod control;
/// The live engine's portfolios as JSON Lines.
pub mod export;
/// The venue's `exec`, `mark` and `instrument` frames, decoded and applied typed.
pub mod inbound;
/// The venue's `fills` and `rejects` frames, decoded.
pub mod reports;
/// Rows for PostgreSQL's `COPY` and stream entries.
pub mod rows;
/// Scenario files and their replay.
pub mod scenario;
/// The venue protocol's `orders` frame.
pub mod wire;
/// The protocol's field rules (decimal syntax, names, client order ids), one table for
/// every decoder.
pub mod wire_rules;

#[cfg(feature = "python")]
mod python;

pub use engine::Engine;
pub use event::{parse_event, Event};
pub use scenario::{replay, replay_jsonl, ScenarioError};
