//! PyO3 bindings: `pyservice._engine_core`. Every call that touches many followers runs
//! with the GIL released (a frame is decoded without it above 64 KiB); batches stay Rust vectors until Python asks to render them.
//! The files mirror the core's modules and only convert: the rules are in the core.
//!
//! - `scenario`: `Engine`, `Batch`, `replay_jsonl`, `event_times` (scenario runs);
//! - `engine`: `LiveEngine` and its `Outcome` (the daemon's engine in live mode);
//! - `inbound`: `decode_venue`, `Execution`, `Mark`, `InstrumentDef` (every venue log
//!   entry decoded from its payload; fills and rejects come back as `Reports`);
//! - `reports`: `Reports`, `decode_reports` (the venue's fills and rejects frames);
//! - `control`: `check_control`;
//! - `rows`: `order_rows` (COPY rows of an orders frame).
//!
//! An `Engine` is a single-threaded state machine: use it from one thread (the daemon's
//! event loop). While a call runs without the GIL the object stays borrowed, so a call
//! from a second thread raises `RuntimeError` instead of interleaving.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

mod control;
mod engine;
mod inbound;
mod reports;
mod rows;
mod scenario;

create_exception!(
    _engine_core,
    CopyEngineError,
    PyValueError,
    "Base of every error the engine core raises."
);
create_exception!(
    _engine_core,
    ScenarioError,
    CopyEngineError,
    "The file is not a valid scenario (docs/scenario-format.md)."
);
create_exception!(
    _engine_core,
    FrameError,
    CopyEngineError,
    "A venue frame that breaks the protocol (docs/protocol.md)."
);

/// Start the thread that takes half of every big fan-out and frame (it starts with the
/// first one otherwise); false if it cannot be started (batches then run on one thread).
#[pyfunction]
fn start_helper(py: Python<'_>) -> bool {
    py.detach(crate::parallel::start_helper)
}

#[pymodule]
fn _engine_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start_helper, m)?)?;
    scenario::register(m)?;
    engine::register(m)?;
    reports::register(m)?;
    control::register(m)?;
    rows::register(m)?;
    inbound::register(m)?;
    m.add("CopyEngineError", m.py().get_type::<CopyEngineError>())?;
    m.add("ScenarioError", m.py().get_type::<ScenarioError>())?;
    m.add("FrameError", m.py().get_type::<FrameError>())?;
    Ok(())
}

/// `standings()` of `Engine` and `LiveEngine`: (id, followers, aum, copiers_pnl) per
/// provider, money as canonical decimals.
fn standings(engine: &crate::engine::Engine) -> PyResult<Vec<(String, u64, String, String)>> {
    let rows = engine.standings().map_err(CopyEngineError::new_err)?;
    Ok(rows
        .into_iter()
        .map(|(name, s)| {
            (
                name.to_owned(),
                s.followers,
                s.aum.to_string(),
                s.copiers_pnl.to_string(),
            )
        })
        .collect())
}
