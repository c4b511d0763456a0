//! `Engine`, `Batch`, `replay_jsonl` and `event_times`: scenario runs (`crate::scenario`)
//! from Python.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::engine::Engine;
use crate::model::Record;
use crate::scenario::{self, record_json, Version};

use super::ScenarioError;

/// Replay a scenario file's text; returns its JSON Lines output.
#[pyfunction]
fn replay_jsonl(py: Python<'_>, text: &str) -> PyResult<String> {
    py.detach(|| scenario::replay_jsonl(text))
        .map_err(|e| ScenarioError::new_err(e.0))
}

/// The time (µs since the epoch) each event of a scenario counts at.
#[pyfunction]
fn event_times(py: Python<'_>, text: &str) -> PyResult<Vec<i64>> {
    py.detach(|| scenario::event_times(text))
        .map_err(|e| ScenarioError::new_err(e.0))
}

/// Record buffers returned by dropped batches, so a fan-out to thousands of followers
/// reuses warm memory instead of allocating (and page-faulting) a new vector each time.
type Pool = Arc<Mutex<Vec<Vec<Record>>>>;

/// The outcome records of one event, held in Rust (no Python object per follower).
#[pyclass(frozen, module = "pyservice._engine_core")]
struct Batch {
    seq: u64,
    records: Vec<Record>,
    pool: Pool,
    /// The engine that made it: its records name followers by that engine's ids.
    engine_id: u64,
}

impl Drop for Batch {
    fn drop(&mut self) {
        let mut records = std::mem::take(&mut self.records);
        records.clear();
        if let Ok(mut pool) = self.pool.lock() {
            if pool.len() < 4 {
                pool.push(records);
            }
        }
    }
}

#[pymethods]
impl Batch {
    fn __len__(&self) -> usize {
        self.records.len()
    }

    #[getter]
    fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of copy orders.
    #[getter]
    fn orders(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, Record::Order(_)))
            .count()
    }

    /// Number of skips.
    #[getter]
    fn skips(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r, Record::Skip { .. }))
            .count()
    }

    /// The error message if the event was refused.
    #[getter]
    fn error(&self) -> Option<String> {
        self.records.iter().find_map(|r| match r {
            Record::Error(m) => Some(m.clone()),
            _ => None,
        })
    }
}

/// The engine state machine over one scenario header (instruments, providers, platform).
/// Single-threaded: see the module comment.
#[pyclass(name = "Engine", module = "pyservice._engine_core")]
struct PyEngine {
    inner: Engine,
    /// The scenario file's version: the time rule `apply` follows.
    version: Version,
    pool: Pool,
    id: u64,
}

/// Engine ids, so a batch is never rendered with another engine's names.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

#[pymethods]
impl PyEngine {
    /// Build from a scenario's text; its events (if any) are applied, errors ignored.
    #[staticmethod]
    fn from_scenario(py: Python<'_>, text: &str) -> PyResult<Self> {
        Self::build(py, text, true)
    }

    /// Build from a scenario's header only (its events are not applied); `apply` then
    /// follows the file's version (a version 2 event's `time` moves the clock).
    #[staticmethod]
    fn from_header(py: Python<'_>, text: &str) -> PyResult<Self> {
        Self::build(py, text, false)
    }

    /// Apply one event (a JSON object text) at input position `seq`.
    fn apply(&mut self, py: Python<'_>, seq: u64, event_json: &str) -> Batch {
        let engine_id = self.id;
        let engine = &mut self.inner;
        let spare = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.pop())
            .unwrap_or_default();
        let pool = self.pool.clone();
        let version = self.version;
        py.detach(|| {
            match serde_json::from_str(event_json) {
                Ok(raw) => scenario::apply_event(engine, version, seq, &raw),
                Err(e) => engine.record_error(format!("not JSON: {e}")),
            };
            Batch {
                seq,
                records: engine.swap_records(spare),
                pool,
                engine_id,
            }
        })
    }

    /// A batch's records as JSON Lines (names resolved), for tools and tests. Raises
    /// ValueError for a batch made by another Engine.
    fn render_jsonl(&self, py: Python<'_>, batch: &Batch) -> PyResult<String> {
        if batch.engine_id != self.id {
            return Err(PyValueError::new_err(
                "this batch was made by another Engine",
            ));
        }
        let engine = &self.inner;
        Ok(py.detach(|| {
            batch
                .records
                .iter()
                .map(|r| record_json(engine, batch.seq, r).to_string() + "\n")
                .collect()
        }))
    }

    #[getter]
    fn relationships(&self) -> usize {
        self.inner.relationship_count()
    }

    /// Venue time of the latest event, µs since the epoch (UTC).
    #[getter]
    fn now_us(&self) -> i64 {
        self.inner.now_us()
    }

    /// Per provider, in provider order: (id, followers, aum, copiers_pnl), money as
    /// canonical decimals. Raises CopyEngineError if a sum leaves the money range.
    fn standings(&self) -> PyResult<Vec<(String, u64, String, String)>> {
        super::standings(&self.inner)
    }
}

impl PyEngine {
    /// The engine of a scenario's header, with its events applied if `with_events`.
    fn build(py: Python<'_>, text: &str, with_events: bool) -> PyResult<Self> {
        py.detach(|| {
            let scenario::Scenario {
                mut engine,
                events,
                version,
            } = scenario::parse(text)?;
            if with_events {
                for (i, raw) in events.iter().enumerate() {
                    scenario::apply_event(&mut engine, version, i as u64, raw);
                }
            }
            Ok(Self {
                inner: engine,
                version,
                pool: Pool::default(),
                id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            })
        })
        .map_err(|e: scenario::ScenarioError| ScenarioError::new_err(e.0))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(replay_jsonl, m)?)?;
    m.add_function(wrap_pyfunction!(event_times, m)?)?;
    m.add_class::<PyEngine>()?;
    m.add_class::<Batch>()?;
    Ok(())
}
