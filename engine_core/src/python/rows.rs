//! `order_rows`: the `copy_orders` rows of an orders frame (`crate::rows`).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::FrameError;

/// `copy_orders` rows in COPY text format (tagged with `shard`, and with the control
/// change that made the frame, 0 for a venue message) of an orders frame this engine
/// wrote; FrameError for anything else.
#[pyfunction]
#[pyo3(signature = (frame, shard, change_id = 0))]
fn order_rows<'py>(
    py: Python<'py>,
    frame: &[u8],
    shard: &str,
    change_id: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut buf = Vec::new();
    py.detach(|| crate::rows::orders_rows(frame, shard, change_id, &mut buf))
        .map_err(FrameError::new_err)?;
    Ok(PyBytes::new(py, &buf))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(order_rows, m)?)?;
    Ok(())
}
