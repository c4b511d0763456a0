//! `Reports` and `decode_reports`: the venue's `fills` and `rejects` frames
//! (`crate::reports`), decoded without the GIL and held in Rust.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::reports::{ReportKind, Reports};

use super::FrameError;

/// A decoded `fills` or `rejects` frame, held in Rust (no Python object per entry).
#[pyclass(name = "Reports", frozen, module = "pyservice._engine_core")]
pub struct PyReports(pub(super) Reports);

#[pymethods]
impl PyReports {
    #[getter]
    fn seq(&self) -> u64 {
        self.0.seq
    }
    /// The venue's time of the event, µs since the Unix epoch (UTC).
    #[getter]
    fn ts(&self) -> i64 {
        self.0.ts
    }

    /// "fills" or "rejects".
    #[getter]
    fn kind(&self) -> &'static str {
        self.0.kind.as_str()
    }

    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// The entries as tuples, as `CopyFills.fills` / `CopyRejects.rejects` hold them
    /// (for tests and tools; the daemon never builds them).
    fn entries(&self) -> Vec<Vec<&str>> {
        match self.0.kind {
            ReportKind::Fills => self.0.fills().map(|(a, b, c)| vec![a, b, c]).collect(),
            ReportKind::Rejects => self.0.rejects().map(|(a, b)| vec![a, b]).collect(),
        }
    }

    /// `copy_fills` / `copy_rejects` rows in COPY text format, tagged with `shard`.
    fn copy_rows<'py>(&self, py: Python<'py>, shard: &str) -> Bound<'py, PyBytes> {
        let mut buf = Vec::new();
        py.detach(|| crate::rows::report_rows(&self.0, shard, &mut buf));
        PyBytes::new(py, &buf)
    }

    /// The entries as a JSON array of arrays of strings (the stream entry's `entries`).
    fn entries_json<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut buf = Vec::new();
        py.detach(|| crate::rows::entries_json(&self.0, &mut buf));
        PyBytes::new(py, &buf)
    }

    /// Rejects by reason (empty for fills), for the metrics.
    fn reasons(&self) -> Vec<(&str, usize)> {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, reason) in self.0.rejects() {
            match counts.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += 1,
                None => counts.push((reason, 1)),
            }
        }
        counts
    }

    fn __repr__(&self) -> String {
        format!(
            "Reports(kind={:?}, seq={}, ts={}, entries={})",
            self.0.kind.as_str(),
            self.0.seq,
            self.0.ts,
            self.0.len()
        )
    }
}

/// Decode a `fills` or `rejects` frame payload (no length prefix), with the checks of
/// `pyservice.protocol`'s Structs; raises FrameError with the reason otherwise.
#[pyfunction]
fn decode_reports(py: Python<'_>, payload: &[u8]) -> PyResult<PyReports> {
    py.detach(|| Reports::decode(payload))
        .map(PyReports)
        .map_err(FrameError::new_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyReports>()?;
    m.add_function(wrap_pyfunction!(decode_reports, m)?)?;
    Ok(())
}
