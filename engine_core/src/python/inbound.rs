//! The venue's `exec`, `mark` and `instrument` messages decoded in Rust (`crate::inbound`),
//! as Python objects the daemon, recovery and the projector pass to
//! `LiveEngine.message`; `decode_venue` also returns `fills` / `rejects` as `Reports`.

use pyo3::prelude::*;

use crate::engine::Engine;
use crate::inbound::{self, Exec, Inbound, InstrumentDef, Mark};
use crate::model::Kind;

use super::reports::PyReports;
use super::FrameError;

/// A decoded `exec` message (the fields of `protocol.ProviderExecution`).
#[pyclass(name = "Execution", frozen, module = "pyservice._engine_core")]
pub struct PyExecution(Exec);

#[pymethods]
impl PyExecution {
    /// The message's tag, "exec".
    #[getter]
    fn tag(&self) -> &'static str {
        "exec"
    }
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    /// The venue's time of the event, µs since the Unix epoch (UTC).
    #[getter]
    fn ts(&self) -> i64 {
        self.0.ts
    }
    #[getter]
    fn provider(&self) -> &str {
        &self.0.provider
    }
    #[getter]
    fn exec_id(&self) -> &str {
        &self.0.exec_id
    }
    #[getter]
    fn symbol(&self) -> &str {
        &self.0.symbol
    }
    #[getter]
    fn side(&self) -> &'static str {
        self.0.side.as_str()
    }
    #[getter]
    fn qty(&self) -> &str {
        &self.0.qty
    }
    #[getter]
    fn price(&self) -> &str {
        &self.0.price
    }
    #[getter]
    fn provider_equity(&self) -> &str {
        &self.0.provider_equity
    }
    #[getter]
    fn leverage(&self) -> u32 {
        self.0.leverage
    }

    fn __repr__(&self) -> String {
        let e = &self.0;
        format!(
            "Execution(seq={}, ts={}, provider={:?}, exec_id={:?}, symbol={:?}, side={:?}, \
             qty={:?}, price={:?}, provider_equity={:?}, leverage={})",
            e.seq,
            e.ts,
            e.provider,
            e.exec_id,
            e.symbol,
            e.side.as_str(),
            e.qty,
            e.price,
            e.provider_equity,
            e.leverage
        )
    }
}

/// A decoded `mark` message (the fields of `protocol.MarkPrice`).
#[pyclass(name = "Mark", frozen, module = "pyservice._engine_core")]
pub struct PyMark(Mark);

#[pymethods]
impl PyMark {
    /// The message's tag, "mark".
    #[getter]
    fn tag(&self) -> &'static str {
        "mark"
    }
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    /// The venue's time of the event, µs since the Unix epoch (UTC).
    #[getter]
    fn ts(&self) -> i64 {
        self.0.ts
    }
    #[getter]
    fn symbol(&self) -> &str {
        &self.0.symbol
    }
    #[getter]
    fn price(&self) -> &str {
        &self.0.price
    }

    fn __repr__(&self) -> String {
        format!(
            "Mark(seq={}, ts={}, symbol={:?}, price={:?})",
            self.0.seq, self.0.ts, self.0.symbol, self.0.price
        )
    }
}

/// A decoded `instrument` message (the fields of `protocol.Instrument`).
#[pyclass(name = "InstrumentDef", frozen, module = "pyservice._engine_core")]
pub struct PyInstrumentDef(InstrumentDef);

#[pymethods]
impl PyInstrumentDef {
    /// The message's tag, "instrument".
    #[getter]
    fn tag(&self) -> &'static str {
        "instrument"
    }
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    /// The venue's time of the event, µs since the Unix epoch (UTC).
    #[getter]
    fn ts(&self) -> i64 {
        self.0.ts
    }
    #[getter]
    fn symbol(&self) -> &str {
        &self.0.symbol
    }
    /// "spot" or "perp".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.0.kind {
            Kind::Spot => "spot",
            Kind::Perp => "perp",
        }
    }
    #[getter]
    fn tick(&self) -> &str {
        &self.0.tick
    }
    #[getter]
    fn step(&self) -> &str {
        &self.0.step
    }
    #[getter]
    fn min_qty(&self) -> &str {
        &self.0.min_qty
    }
    #[getter]
    fn min_notional(&self) -> &str {
        &self.0.min_notional
    }

    fn __repr__(&self) -> String {
        let i = &self.0;
        format!(
            "InstrumentDef(seq={}, ts={}, symbol={:?}, kind={:?}, tick={:?}, step={:?}, \
             min_qty={:?}, min_notional={:?})",
            i.seq,
            i.ts,
            i.symbol,
            self.kind(),
            i.tick,
            i.step,
            i.min_qty,
            i.min_notional
        )
    }
}

/// What `LiveEngine.message` takes.
#[derive(FromPyObject)]
pub enum Message<'py> {
    Exec(Bound<'py, PyExecution>),
    Mark(Bound<'py, PyMark>),
    Instrument(Bound<'py, PyInstrumentDef>),
}

/// A `Message`'s Rust value, to apply without the GIL.
pub enum Decoded<'a> {
    Exec(&'a Exec),
    Mark(&'a Mark),
    Instrument(&'a InstrumentDef),
}

impl Message<'_> {
    pub fn get(&self) -> Decoded<'_> {
        match self {
            Message::Exec(b) => Decoded::Exec(&b.get().0),
            Message::Mark(b) => Decoded::Mark(&b.get().0),
            Message::Instrument(b) => Decoded::Instrument(&b.get().0),
        }
    }
}

impl Decoded<'_> {
    /// The message's seq, and the leverage its opening orders carry (1 but for `exec`).
    pub fn seq_and_leverage(&self) -> (u64, u32) {
        match self {
            Decoded::Exec(e) => (e.seq, e.leverage),
            Decoded::Mark(m) => (m.seq, 1),
            Decoded::Instrument(i) => (i.seq, 1),
        }
    }

    pub fn apply(&self, engine: &mut Engine) {
        match self {
            Decoded::Exec(e) => e.apply(engine),
            Decoded::Mark(m) => m.apply(engine),
            Decoded::Instrument(i) => i.apply(engine),
        }
    }
}

/// Decode a venue frame payload (no length prefix) tagged `exec`, `mark`, `instrument`,
/// `fills` or `rejects`, with the checks of `pyservice.protocol`'s Structs: an
/// `Execution`, `Mark`, `InstrumentDef` or `Reports`; FrameError with the reason if
/// it breaks them. None for any other payload (`hello`, `hb`, or not a tagged array:
/// msgspec decodes or refuses those).
#[pyfunction]
fn decode_venue(py: Python<'_>, payload: &[u8]) -> PyResult<Option<Py<PyAny>>> {
    // A big frame (a batch of reports) is decoded without the GIL, as `decode_reports` does.
    let decoded = if payload.len() > 64 * 1024 {
        py.detach(|| inbound::decode(payload))
    } else {
        inbound::decode(payload)
    };
    let Some(decoded) = decoded else {
        return Ok(None);
    };
    let obj = match decoded.map_err(FrameError::new_err)? {
        Inbound::Exec(e) => Py::new(py, PyExecution(e))?.into_any(),
        Inbound::Mark(m) => Py::new(py, PyMark(m))?.into_any(),
        Inbound::Instrument(i) => Py::new(py, PyInstrumentDef(i))?.into_any(),
        Inbound::Reports(r) => Py::new(py, PyReports(r))?.into_any(),
    };
    Ok(Some(obj))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExecution>()?;
    m.add_class::<PyMark>()?;
    m.add_class::<PyInstrumentDef>()?;
    m.add_function(wrap_pyfunction!(decode_venue, m)?)?;
    Ok(())
}
