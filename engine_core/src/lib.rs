//! copyengine's hot path: exact fixed-point copy sizing, risk checks and follower state.
//!
//! Pure Rust; the PyO3 layer lives in `python/` behind the `python` feature, so
//! `cargo test` needs no Python. The rules are those of `pyservice/scenarios/FORMAT.md`.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod coid;
pub mod engine;
pub mod event;
pub mod exact;
pub mod fixed;
pub mod inbound;
pub mod model;
pub mod parallel;
pub mod pending;
pub mod portfolio;
pub mod reports;
pub mod rows;
pub mod scenario;
pub mod sizing;
pub mod wire;
pub mod wire_rules;

#[cfg(feature = "python")]
mod python;

pub use engine::Engine;
pub use event::{parse_event, Event};
pub use scenario::{replay, replay_jsonl, ScenarioError};
