//! Two threads for the big batches: a fan-out over a large book, and its `orders` frame.
//!
//! The machine the engine is sized for has two cores, and a provider execution at 10,000
//! followers is milliseconds of work on one. The batch is cut into parts (more than two,
//! so a thread that is preempted holds back little); this thread and one helper take
//! parts from a shared queue until none is left, and the results come back in part
//! order, so the output is exactly that of doing the parts one after another.
//!
//! The helper is the one thread of a rayon pool, started with the first batch and asleep
//! between batches (starting a thread per batch cost 80-160 µs here, a tenth of what
//! the second thread saves). A panic in a part reaches the caller as it would on one
//! thread. If the helper cannot be started, batches run on the calling thread alone.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use rayon_core::{ThreadPool, ThreadPoolBuilder};

/// Batches of at least this many items are worth a second thread (below it, starting
/// the helper costs about what it saves).
pub const MIN_ITEMS: usize = 2048;

/// How many parts a parallel batch is cut into.
pub const PARTS: usize = 8;

/// `f` over every part, on this thread and, for two or more parts, one helper thread;
/// the results in the parts' order.
pub fn map_parts<T, R, F>(parts: Vec<T>, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    if parts.len() < 2 {
        return parts.into_iter().map(f).collect();
    }
    let n = parts.len();
    let queue: Mutex<VecDeque<(usize, T)>> = Mutex::new(parts.into_iter().enumerate().collect());
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(n));
    let work = || loop {
        // a poisoned lock means the other thread panicked: its panic reaches the caller
        let next = queue.lock().map_or(None, |mut q| q.pop_front());
        let Some((i, part)) = next else { break };
        let result = f(part);
        if let Ok(mut d) = done.lock() {
            d.push((i, result));
        }
    };
    match helper() {
        Some(pool) => pool.in_place_scope(|s| {
            s.spawn(|_| work());
            work();
        }),
        None => work(),
    }
    let mut done = done
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(done.len(), n, "every part ran");
    done.sort_unstable_by_key(|&(i, _)| i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Start the helper thread now rather than with the first big batch (the daemon does,
/// to give it its scheduling priority); false if it cannot be started.
pub fn start_helper() -> bool {
    helper().map(|pool| pool.install(|| ())).is_some()
}

/// The helper's pool, built on first use.
fn helper() -> Option<&'static ThreadPool> {
    static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "copyengine-helper".into())
            .build()
            .ok()
    })
    .as_ref()
}

/// Cut `0..len` into `parts` contiguous ranges of near-equal size (as bounds).
pub fn bounds(len: usize, parts: usize) -> impl Iterator<Item = (usize, usize)> {
    let parts = parts.max(1);
    (0..parts).map(move |i| (len * i / parts, len * (i + 1) / parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_part_order() {
        let parts: Vec<Vec<u64>> = (0..50)
            .map(|i| (i * 100..(i + 1) * 100).collect())
            .collect();
        let sums = map_parts(parts, |p| p.iter().sum::<u64>());
        let expect: Vec<u64> = (0..50u64).map(|i| (i * 100..(i + 1) * 100).sum()).collect();
        assert_eq!(sums, expect);
    }

    #[test]
    fn parts_run_on_two_threads() {
        // each part waits until two threads have arrived (or a while): both must be there
        let arrived = std::sync::atomic::AtomicUsize::new(0);
        let threads = map_parts((0..2).collect(), |_: i32| {
            arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while arrived.load(std::sync::atomic::Ordering::SeqCst) < 2 {
                assert!(std::time::Instant::now() < deadline, "no second thread");
                std::thread::yield_now();
            }
            std::thread::current().id()
        });
        assert_ne!(threads[0], threads[1]);
    }

    #[test]
    fn one_part_runs_here() {
        let here = std::thread::current().id();
        let ids = map_parts(vec![()], |()| std::thread::current().id());
        assert_eq!(ids, vec![here]);
    }

    #[test]
    #[should_panic(expected = "part 3")]
    fn a_panic_in_a_part_reaches_the_caller() {
        map_parts((0..8).collect(), |i: i32| assert!(i != 3, "part {i}"));
    }

    #[test]
    fn bounds_cover_the_range_once() {
        for len in [0, 1, 7, 8, 9, 10_001] {
            let b: Vec<_> = bounds(len, PARTS).collect();
            assert_eq!(b.len(), PARTS);
            assert_eq!(b[0].0, 0);
            assert_eq!(b[PARTS - 1].1, len);
            assert!(b.windows(2).all(|w| w[0].1 == w[1].0));
        }
    }
}
