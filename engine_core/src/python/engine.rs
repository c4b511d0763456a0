//! `LiveEngine`: the engine in live mode for the daemon. Each venue message is one call
//! that runs without the GIL and returns an `Outcome`: the finished `orders` frame (if the
//! message produced orders) and the counts the daemon turns into metrics.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use serde_json::{json, Value};

use crate::control::{control_seq, parse_change, Change};
use crate::engine::Engine;
use crate::event::{decimal_text, is_identifier, parse_event, DecimalRange};
use crate::fixed::Factor;
use crate::model::{CopyOrder, Record, SkipReason};
use crate::scenario;
use crate::settlement::{Period, Schedule, Settlement};
use crate::wire::encode_orders;

use super::reports::PyReports;
use super::{CopyEngineError, ScenarioError};

const SKIP_REASONS: [SkipReason; 5] = [
    SkipReason::MaxOpenTrades,
    SkipReason::InsufficientBalance,
    SkipReason::BelowMin,
    SkipReason::BelowStep,
    SkipReason::Overflow,
];

/// The keys of `Outcome.settlements`' dicts: a settlement record's, without `event` and
/// `kind` (docs/scenario-format.md "Output records").
const SETTLEMENT_KEYS: [&str; 12] = [
    "period",
    "follower",
    "provider",
    "equity",
    "high_watermark",
    "profit",
    "due",
    "charged",
    "provider_credit",
    "platform_credit",
    "written_off",
    "status",
];

/// One settlement, names resolved. Its amounts become strings only when Python asks
/// (`Outcome.settlements`, in the projector): a settlement of 100,000 relationships
/// holds the hot path for the engine's pass, not for 1.2 million strings.
struct SettlementRow {
    settlement: Settlement,
    follower: String,
    provider: String,
}

impl SettlementRow {
    fn new(engine: &Engine, s: &Settlement) -> Self {
        Self {
            settlement: s.clone(),
            follower: engine.follower_name(s.follower).to_string(),
            provider: engine.provider_name(s.provider).to_string(),
        }
    }

    /// Its values in `SETTLEMENT_KEYS` order.
    fn values(&self) -> [String; 12] {
        let s = &self.settlement;
        let c = &s.charge;
        [
            s.period.to_string(),
            self.follower.clone(),
            self.provider.clone(),
            s.equity.to_string(),
            s.high_watermark.to_string(),
            s.profit.to_string(),
            c.due.to_string(),
            c.charged.to_string(),
            c.provider_credit.to_string(),
            c.platform_credit.to_string(),
            c.written_off.to_string(),
            c.status.as_str().to_string(),
        ]
    }
}

/// What one venue message did. No Python object per follower: counts and one frame.
#[pyclass(frozen, module = "pyservice._engine_core")]
pub struct Outcome {
    frame: Option<Py<PyBytes>>,
    #[pyo3(get)]
    orders: usize,
    skips: [usize; 5],
    /// (max_per_trade, free_cash)
    clamps: [usize; 2],
    #[pyo3(get)]
    stops: usize,
    /// The relationships max-loss stopped, as (follower, provider).
    #[pyo3(get)]
    stopped: Vec<(String, String)>,
    #[pyo3(get)]
    errors: Vec<String>,
    /// Settlement records, in order (a dict each only when asked for).
    settlement_rows: Vec<SettlementRow>,
    /// `settle` only: that label was settled before; nothing changed.
    #[pyo3(get)]
    already_settled: bool,
    /// The relationships that ended at this input, as they ended (after their
    /// `unfollow` settlement): one `portfolios_jsonl` line each, in the order they ended.
    /// An unfollow whose orders are working ends at the report of the last of them.
    #[pyo3(get)]
    ended: Vec<String>,
}

#[pymethods]
impl Outcome {
    /// The settlements this input made, in record order (those of the period boundaries
    /// its time crossed come first): one dict of decimal strings each, keys as a
    /// `settlement` record's without `event` and `kind`.
    #[getter]
    fn settlements<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.settlement_rows
            .iter()
            .map(|row| {
                let d = PyDict::new(py);
                for (k, v) in SETTLEMENT_KEYS.iter().zip(row.values()) {
                    d.set_item(*k, v)?;
                }
                Ok(d)
            })
            .collect()
    }

    /// The complete `orders` frame (length prefix included), or None.
    #[getter]
    fn frame(&self, py: Python<'_>) -> Option<Py<PyBytes>> {
        self.frame.as_ref().map(|f| f.clone_ref(py))
    }

    /// Skips by reason (only reasons that occurred).
    #[getter]
    fn skips<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (reason, &n) in SKIP_REASONS.iter().zip(&self.skips) {
            if n > 0 {
                d.set_item(reason.as_str(), n)?;
            }
        }
        Ok(d)
    }

    /// Clamped orders by binding cap (only caps that occurred).
    #[getter]
    fn clamps<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, &n) in ["max_per_trade", "free_cash"].iter().zip(&self.clamps) {
            if n > 0 {
                d.set_item(*name, n)?;
            }
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "Outcome(orders={}, skips={}, stops={}, errors={}, settlements={})",
            self.orders,
            self.skips.iter().sum::<usize>(),
            self.stops,
            self.errors.len(),
            self.settlement_rows.len()
        )
    }
}

/// Counts, computed without the GIL (the frame goes into the engine's buffer).
struct Summary {
    orders: usize,
    skips: [usize; 5],
    clamps: [usize; 2],
    stops: usize,
    stopped: Vec<(String, String)>,
    errors: Vec<String>,
    settlements: Vec<SettlementRow>,
    ended: Vec<String>,
}

/// `leverage`: the opening orders' leverage, or None to take each order's from the
/// engine's working-order table.
fn summarize(
    engine: &Engine,
    seq: u64,
    records: &[Record],
    leverage: Option<u32>,
    frame: &mut Vec<u8>,
) -> Summary {
    let mut s = Summary {
        orders: 0,
        skips: [0; 5],
        clamps: [0; 2],
        stops: 0,
        stopped: Vec::new(),
        errors: Vec::new(),
        settlements: Vec::new(),
        ended: engine
            .finished()
            .iter()
            .map(|v| crate::export::portfolio_record(v).to_string())
            .collect(),
    };
    for r in records {
        match r {
            Record::Order(o) => match o.clamped {
                Some(crate::model::Cap::MaxPerTrade) => s.clamps[0] += 1,
                Some(crate::model::Cap::FreeCash) => s.clamps[1] += 1,
                None => {}
            },
            Record::Skip { reason, .. } => {
                let i = SKIP_REASONS.iter().position(|r| r == reason).unwrap_or(4);
                s.skips[i] += 1;
            }
            Record::Stop { follower, provider } => {
                s.stops += 1;
                s.stopped.push((
                    engine.follower_name(*follower).to_string(),
                    engine.provider_name(*provider).to_string(),
                ));
            }
            Record::Error(m) => s.errors.push(m.clone()),
            Record::Settlement(x) => s.settlements.push(SettlementRow::new(engine, x)),
        }
    }
    let leverage_of = |o: &CopyOrder| match (o.reduce_only, leverage) {
        (true, _) => 1,
        (false, Some(l)) => l,
        (false, None) => engine
            .working_order(o.client_order_id)
            .map_or(1, |p| p.leverage),
    };
    frame.clear();
    s.orders = encode_orders(engine, seq, records, leverage_of, frame);
    s
}

fn outcome(py: Python<'_>, s: Summary, frame: &[u8]) -> Outcome {
    Outcome {
        frame: (s.orders > 0).then(|| PyBytes::new(py, frame).unbind()),
        orders: s.orders,
        skips: s.skips,
        clamps: s.clamps,
        stops: s.stops,
        stopped: s.stopped,
        errors: s.errors,
        settlement_rows: s.settlements,
        already_settled: false,
        ended: s.ended,
    }
}

/// The string-based calls (`execute`, `mark`, ...) take the message's venue time as
/// `ts`; without it (tests and tools that drive the rules directly) the clock stays.
fn advance(engine: &mut Engine, seq: u64, ts: Option<i64>) {
    if let Some(ts) = ts {
        engine.advance_clock(seq, ts);
    }
}

/// The engine in live mode over follower books (see `docs/protocol.md`).
/// Single-threaded, like `Engine`.
#[pyclass(name = "LiveEngine", module = "pyservice._engine_core")]
pub struct PyLiveEngine {
    inner: Engine,
    /// The last `orders` frame, kept so the next one reuses its memory: a fresh
    /// megabyte per fan-out costs page faults.
    frame: Vec<u8>,
}

impl PyLiveEngine {
    /// Every call that applies a message: `step` runs on the engine without the GIL, then
    /// its records become the outcome, with the orders frame at `seq` (`leverage` as in
    /// `summarize`).
    fn run<F>(&mut self, py: Python<'_>, seq: u64, leverage: Option<u32>, step: F) -> Outcome
    where
        F: FnOnce(&mut Engine) + Send,
    {
        let (engine, buf) = (&mut self.inner, &mut self.frame);
        let s = py.detach(|| {
            step(engine);
            summarize(engine, seq, engine.records(), leverage, buf)
        });
        outcome(py, s, &self.frame)
    }

    /// Apply a scenario-style event given as JSON at venue time `ts`, then summarize.
    fn event(
        &mut self,
        py: Python<'_>,
        seq: u64,
        ts: Option<i64>,
        event: Value,
        leverage: u32,
    ) -> Outcome {
        self.run(py, seq, Some(leverage), |engine| {
            advance(engine, seq, ts);
            engine.apply_parsed(seq, parse_event(&event));
        })
    }
}

#[pymethods]
impl PyLiveEngine {
    /// Apply control change number `change` (JSON, see `check_control`) after venue seq
    /// `after_seq`; its orders frame, if any, carries `after_seq`. A change of the terms
    /// (`profit_share`, `platform`) makes no records but its `error` if refused.
    fn control(
        &mut self,
        py: Python<'_>,
        after_seq: u64,
        change: u64,
        text: &str,
    ) -> PyResult<Outcome> {
        let seq = control_seq(change).ok_or_else(|| {
            pyo3::exceptions::PyOverflowError::new_err("change number is 2^63 or more")
        })?;
        Ok(self.run(py, after_seq, None, |engine| {
            match parse_change(text) {
                Ok(Change::Event(ev)) => engine.apply(seq, &ev),
                Ok(Change::Terms(t)) => engine.apply_terms(&t),
                Err(message) => engine.record_error(message),
            };
        }))
    }

    /// Settle every relationship now, as control change number `change` after venue seq
    /// `after_seq` (like `control`: stop orders of the max-loss check that follows carry
    /// its ids, the frame carries `after_seq`). `label` names the period settled
    /// (default `manual-<change>`); a label settled before changes nothing and the
    /// outcome says `already_settled`. CopyEngineError for a label that is not 1-64
    /// characters of [A-Za-z0-9_.:-] or is `unfollow`.
    #[pyo3(signature = (after_seq, change, label=None))]
    fn settle(
        &mut self,
        py: Python<'_>,
        after_seq: u64,
        change: u64,
        label: Option<&str>,
    ) -> PyResult<Outcome> {
        let seq = control_seq(change).ok_or_else(|| {
            pyo3::exceptions::PyOverflowError::new_err("change number is 2^63 or more")
        })?;
        let period = match label {
            None => Period::Manual(change),
            Some(l) if is_identifier(l) && l != "unfollow" => Period::Named(l.into()),
            Some(l) => {
                return Err(CopyEngineError::new_err(format!(
                    "a period label is 1-64 characters of [A-Za-z0-9_.:-], not 'unfollow': '{l}'"
                )))
            }
        };
        let mut already = false;
        let flag = &mut already;
        let mut outcome = self.run(py, after_seq, None, |engine| {
            *flag = engine.settle(seq, period).is_none();
        });
        outcome.already_settled = already;
        Ok(outcome)
    }

    /// Set a provider's profit share (a decimal string in [0, max_profit_share_pct]),
    /// in force from the next period boundary (at once without a schedule or before the
    /// first input). CopyEngineError if refused (nothing changes).
    fn set_profit_share(&mut self, provider: &str, pct: &str) -> PyResult<()> {
        let pct = decimal_text("profit_share_pct", pct, DecimalRange::Percent)
            .map_err(CopyEngineError::new_err)?;
        self.inner
            .set_profit_share(provider, Factor(pct))
            .map_err(CopyEngineError::new_err)
    }

    /// Set the platform fee (a decimal string in [0, 100]); when it takes effect as for
    /// `set_profit_share`.
    fn set_platform_fee(&mut self, pct: &str) -> PyResult<()> {
        let pct = decimal_text("platform_fee_pct", pct, DecimalRange::Percent)
            .map_err(CopyEngineError::new_err)?;
        self.inner
            .set_platform_fee(Factor(pct))
            .map_err(CopyEngineError::new_err)
    }

    /// Set the schedule: `weekly`, `monthly` or `none`; the next boundary is the first
    /// after the current venue time.
    fn set_settlement(&mut self, schedule: &str) -> PyResult<()> {
        let s = Schedule::parse(schedule).ok_or_else(|| {
            CopyEngineError::new_err("field 'settlement' must be one of weekly, monthly, none")
        })?;
        self.inner.set_settlement(s);
        Ok(())
    }

    /// (schedule, platform fee in force, next boundary in µs or None).
    fn settlement_terms(&self) -> (String, String, Option<i64>) {
        let (s, fee, next) = self.inner.settlement_terms();
        (s.as_str().to_string(), fee.to_string(), next)
    }

    /// A provider's (share in force, share from the next boundary); CopyEngineError for
    /// an unknown provider.
    fn profit_share(&self, provider: &str) -> PyResult<(String, String)> {
        let (now, next) = self
            .inner
            .profit_share(provider)
            .map_err(CopyEngineError::new_err)?;
        Ok((now.to_string(), next.to_string()))
    }

    /// Every period label settled so far (boundaries and requests), sorted.
    #[getter]
    fn settled_periods(&self) -> Vec<String> {
        self.inner.settled_periods().map(str::to_string).collect()
    }

    /// The whole state as bytes (see `restore`), for crash recovery; CopyEngineError if
    /// it cannot be written.
    fn snapshot<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let engine = &mut self.inner;
        let bytes = py
            .detach(|| engine.snapshot())
            .map_err(CopyEngineError::new_err)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The engine a `snapshot` was taken of; CopyEngineError for bytes that are not a
    /// snapshot of this engine version.
    #[staticmethod]
    fn restore(py: Python<'_>, snapshot: &[u8]) -> PyResult<Self> {
        py.detach(|| Engine::restore(snapshot))
            .map(|inner| Self {
                inner,
                frame: Vec::new(),
            })
            .map_err(CopyEngineError::new_err)
    }

    /// Build from a books file's text (providers, platform, follows). Raises
    /// ScenarioError with a one-line reason for an invalid file.
    #[staticmethod]
    fn from_books(py: Python<'_>, text: &str) -> PyResult<Self> {
        py.detach(|| scenario::parse_books(text))
            .map(|inner| Self {
                inner,
                frame: Vec::new(),
            })
            .map_err(|e| ScenarioError::new_err(e.0))
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (seq, symbol, kind, tick, step, min_qty, min_notional, *, ts=None))]
    fn instrument(
        &mut self,
        py: Python<'_>,
        seq: u64,
        symbol: &str,
        kind: &str,
        tick: &str,
        step: &str,
        min_qty: &str,
        min_notional: &str,
        ts: Option<i64>,
    ) -> Outcome {
        let v = json!({"symbol": symbol, "kind": kind, "tick": tick, "step": step,
                       "min_qty": min_qty, "min_notional": min_notional});
        self.run(py, seq, Some(1), |engine| {
            advance(engine, seq, ts);
            match scenario::instrument(&v, "instrument") {
                Ok(inst) => engine.add_instrument(inst),
                Err(e) => engine.record_error(e.0),
            };
        })
    }

    #[pyo3(signature = (seq, symbol, price, *, ts=None))]
    fn mark(
        &mut self,
        py: Python<'_>,
        seq: u64,
        symbol: &str,
        price: &str,
        ts: Option<i64>,
    ) -> Outcome {
        self.event(
            py,
            seq,
            ts,
            json!({"type": "mark", "symbol": symbol, "price": price}),
            1,
        )
    }

    /// A provider execution: one fan-out over the provider's book.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (seq, provider, exec_id, symbol, side, qty, price, provider_equity, leverage=None, *, ts=None))]
    fn execute(
        &mut self,
        py: Python<'_>,
        seq: u64,
        provider: &str,
        exec_id: &str,
        symbol: &str,
        side: &str,
        qty: &str,
        price: &str,
        provider_equity: &str,
        leverage: Option<&Bound<'_, PyAny>>,
        ts: Option<i64>,
    ) -> Outcome {
        // Any value that is not a u32 is out of the rule's range (1..=125): pass 0, so the
        // rule reports it as for any other bad leverage instead of raising OverflowError.
        let leverage: u32 = leverage.map_or(Ok(1), |l| l.extract()).unwrap_or(0);
        let v = json!({"type": "fill", "provider": provider, "exec_id": exec_id,
                       "symbol": symbol, "side": side, "qty": qty, "price": price,
                       "provider_equity": provider_equity, "leverage": leverage});
        self.event(py, seq, ts, v, leverage)
    }

    /// The venue's fill reports: (client_order_id, qty, price) each.
    #[pyo3(signature = (seq, fills, *, ts=None))]
    fn fills(
        &mut self,
        py: Python<'_>,
        seq: u64,
        fills: Vec<(String, String, String)>,
        ts: Option<i64>,
    ) -> Outcome {
        self.run(py, seq, Some(1), |engine| {
            advance(engine, seq, ts);
            let fills = fills
                .iter()
                .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()));
            engine.copy_fills(seq, fills);
        })
    }

    /// The venue's rejects: (client_order_id, reason) each.
    #[pyo3(signature = (seq, rejects, *, ts=None))]
    fn rejects(
        &mut self,
        py: Python<'_>,
        seq: u64,
        rejects: Vec<(String, String)>,
        ts: Option<i64>,
    ) -> Outcome {
        self.run(py, seq, Some(1), |engine| {
            advance(engine, seq, ts);
            engine.copy_rejects(seq, rejects.iter().map(|(a, b)| (a.as_str(), b.as_str())));
        })
    }

    /// A `fills` or `rejects` frame from `decode_venue` (or `decode_reports`), applied like
    /// `fills`/`rejects` at its `ts`.
    fn reports(&mut self, py: Python<'_>, reports: &Bound<'_, PyReports>) -> Outcome {
        let r = &reports.get().0;
        self.run(py, r.seq, Some(1), |engine| r.apply(engine))
    }

    /// An `exec`, `mark` or `instrument` message from `decode_venue`, applied like
    /// `execute` / `mark` / `instrument` (same rules, same errors), from its typed fields,
    /// at its `ts` (the engine's clock: an earlier one is corrected and counted).
    fn message(&mut self, py: Python<'_>, msg: super::inbound::Message<'_>) -> Outcome {
        let msg = msg.get();
        let (seq, leverage) = msg.seq_and_leverage();
        self.run(py, seq, Some(leverage), |engine| msg.apply(engine))
    }

    /// Every working copy order as one frame, to send again after a reconnect.
    fn resend_working(&mut self, py: Python<'_>, seq: u64) -> Outcome {
        self.run(py, seq, None, |engine| {
            engine.resend_working();
        })
    }

    /// File the last fan-out's staged orders into the working-order table (the next
    /// call does it otherwise): call it once the `orders` frame is sent, so that this
    /// work is not between an execution and its copy orders.
    fn file_staged(&mut self, py: Python<'_>) {
        let engine = &mut self.inner;
        py.detach(|| engine.file_staged());
    }

    /// How many working orders there are.
    #[getter]
    fn working_count(&self) -> usize {
        self.inner.working_count()
    }

    #[getter]
    fn relationships(&self) -> usize {
        self.inner.relationship_count()
    }

    /// Venue time of the latest input, µs since the epoch (UTC).
    #[getter]
    fn now_us(&self) -> i64 {
        self.inner.now_us()
    }

    /// How many inputs were stamped earlier than their predecessor (taken at its time).
    #[getter]
    fn clock_corrections(&self) -> u64 {
        self.inner.clock_corrections()
    }

    /// Per provider, in provider order: (id, followers, aum, copiers_pnl), money as
    /// canonical decimals. Raises CopyEngineError if a sum leaves the money range.
    fn standings(&self) -> PyResult<Vec<(String, u64, String, String)>> {
        super::standings(&self.inner)
    }

    /// Every relationship's portfolio as JSON Lines (the replay's `portfolio` records with
    /// `high_watermark` and `fees_paid`, plus `reserved`, `base` and the FIFO `lots`), for
    /// the projector, tests and operators.
    fn portfolios_jsonl(&self) -> String {
        crate::export::portfolios_jsonl(&self.inner)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLiveEngine>()?;
    m.add_class::<Outcome>()?;
    Ok(())
}
