//! `check_control`: a control change's rules (`crate::control`) from Python.

use pyo3::prelude::*;

/// The reason a control change (JSON: the replay's event format, or a change of the
/// settlement terms `profit_share`/`platform`) is invalid on its own, or None. The engine
/// may still refuse a valid one for the state it meets (an unknown follower, a withdrawal
/// above free cash, a share above the maximum): `LiveEngine.control` says so.
#[pyfunction]
fn check_control(text: &str) -> Option<String> {
    crate::control::check_control(text)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_control, m)?)?;
    Ok(())
}
