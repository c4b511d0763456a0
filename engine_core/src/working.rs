//! Live mode's working orders, by client order id.
//!
//! Vocabulary (one word per concept, used throughout the crate and the binding): a
//! *working order* is a copy order sent to the venue and not yet fully filled or
//! rejected (`WorkingOrder`; the table of them is `WorkingOrders`). The orders an event
//! sends are *staged* (`Engine`'s `staged`, not yet in the table, but counted and found
//! as working) until they are *filed* into the table (`Engine::file_staged`): filing is
//! deferred so that a fan-out's inserts are not between an execution and its orders.
//!
//! A fills batch looks up one working order per fill, right after a fan-out (and the
//! daemon's Python) has pushed the table out of cache, so a hash probe per fill is a
//! cache miss per fill. The entries sit in a slab in the order the fan-out sent them,
//! which is also the order the venue reports them: a lookup first tries the slot after
//! the last one removed, and only then the index (id → slot, 24 bytes per bucket).
//! Cold fills of 10,000 orders: 2.15 ms with a `HashMap<u128, WorkingOrder>`, 0.8 ms so
//! (`COLD=1 cargo bench -p engine_core --bench live -- 10000`; benches/RESULTS.md).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::fixed::{Money, Price, Qty};
use crate::model::{RelId, Side, SymbolId};

/// A working order: a copy order sent to the venue and not yet fully filled or rejected.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy)]
pub struct WorkingOrder {
    pub rel: RelId,
    pub symbol: SymbolId,
    pub side: Side,
    pub qty: Qty,
    /// The limit of an opening copy; zero for a (reduce-only market) close.
    pub limit: Price,
    pub reduce_only: bool,
    pub leverage: u32,
    /// Margin reserved by an opening copy (zero for a close).
    pub reserve: Money,
}

impl WorkingOrder {
    pub(crate) fn close(rel: RelId, symbol: SymbolId, side: Side, qty: Qty) -> Self {
        Self {
            rel,
            symbol,
            side,
            qty,
            limit: Price::ZERO,
            reduce_only: true,
            leverage: 1,
            reserve: Money::ZERO,
        }
    }
}

/// Client order ids are already uniform hashes: their low bits are the table hash.
#[derive(Debug, Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// An id as two halves: 8-byte alignment keeps an index bucket at 24 bytes, not 32.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Key(u64, u64);

impl Key {
    fn of(id: u128) -> Self {
        Key(id as u64, (id >> 64) as u64)
    }

    fn id(self) -> u128 {
        u128::from(self.0) | (u128::from(self.1) << 64)
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0 ^ self.1);
    }
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Default)]
pub struct WorkingOrders {
    /// id → slot. Removal leaves the entry (a removal that probes the index is a cache
    /// miss per fill); a slot found here counts only if it still holds that id.
    index: HashMap<Key, u32, BuildHasherDefault<IdHasher>>,
    slots: Vec<Option<(Key, WorkingOrder)>>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
    live: usize,
    /// The slot after the last one removed: the venue reports in the order the orders
    /// were sent, so the next report's order is usually there, and the index is not read.
    cursor: usize,
}

impl WorkingOrders {
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    fn find(&self, key: Key) -> Option<usize> {
        let holds = |slot: usize| matches!(self.slots.get(slot), Some(Some((k, _))) if *k == key);
        if holds(self.cursor) {
            return Some(self.cursor);
        }
        let slot = *self.index.get(&key)? as usize;
        holds(slot).then_some(slot)
    }

    pub fn contains(&self, id: u128) -> bool {
        self.find(Key::of(id)).is_some()
    }

    pub fn get(&self, id: u128) -> Option<&WorkingOrder> {
        let slot = self.find(Key::of(id))?;
        self.slots[slot].as_ref().map(|(_, p)| p)
    }

    /// Add or replace the order `id`. One probe of the index: a fan-out inserts an order
    /// per follower, and after it the index is out of cache.
    pub fn insert(&mut self, id: u128, order: WorkingOrder) {
        let key = Key::of(id);
        if matches!(self.slots.get(self.cursor), Some(Some((k, _))) if *k == key) {
            self.slots[self.cursor] = Some((key, order));
            return;
        }
        let next = match self.free.last() {
            Some(&slot) => slot,
            None => self.slots.len() as u32,
        };
        let slot = match self.index.entry(key) {
            Entry::Occupied(e) if matches!(self.slots[*e.get() as usize], Some((k, _)) if k == key) =>
            {
                self.slots[*e.get() as usize] = Some((key, order));
                return;
            }
            // a stale entry (its order was removed since): point it at the new slot
            Entry::Occupied(mut e) => {
                e.insert(next);
                next
            }
            Entry::Vacant(e) => {
                e.insert(next);
                next
            }
        };
        if self.free.pop().is_some() {
            self.slots[slot as usize] = Some((key, order));
        } else {
            self.slots.push(Some((key, order)));
        }
        self.live += 1;
        if self.index.len() > 2 * self.live + 4096 {
            // orders that stay working while others come and go: drop the stale entries
            self.index.clear();
            for (slot, entry) in self.slots.iter().enumerate() {
                if let Some((k, _)) = entry {
                    self.index.insert(*k, slot as u32);
                }
            }
        }
    }

    pub fn remove(&mut self, id: u128) -> Option<WorkingOrder> {
        let slot = self.find(Key::of(id))?;
        let (_, order) = self.slots[slot].take()?;
        self.live -= 1;
        self.cursor = slot + 1;
        if self.live == 0 {
            // drained: start over, so the slab stays in send order
            self.slots.clear();
            self.free.clear();
            self.index.clear();
            self.cursor = 0;
        } else {
            self.free.push(slot as u32);
        }
        Some(order)
    }

    /// Every working order, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, WorkingOrder)> + '_ {
        self.slots.iter().flatten().map(|&(key, p)| (key.id(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn order(rel: usize) -> WorkingOrder {
        WorkingOrder::close(RelId::next(rel), SymbolId::new(0), Side::Sell, Qty(1))
    }

    #[test]
    fn stale_index_entries_are_dropped_while_an_order_stays_working() {
        let mut table = WorkingOrders::default();
        table.insert(u128::MAX, order(7));
        for round in 0..4u128 {
            for i in 1..3000u128 {
                table.insert(round << 32 | i, order(1));
            }
            // reported out of send order, so the index is used
            for i in (1..3000u128).rev() {
                assert_eq!(
                    table.remove(round << 32 | i).map(|p| p.rel.index()),
                    Some(1)
                );
            }
            // bounded by the peak (3,000 working), not by all orders ever (12,000)
            assert!(
                table.index.len() <= 2 * 3000 + 4096 + 1,
                "{}",
                table.index.len()
            );
            assert_eq!(
                (table.len(), table.get(u128::MAX).map(|p| p.rel.index())),
                (1, Some(7))
            );
            assert_eq!(table.get(round << 32 | 5).map(|p| p.rel.index()), None);
        }
        assert_eq!(table.remove(u128::MAX).map(|p| p.rel.index()), Some(7));
        assert!(table.is_empty() && table.index.is_empty() && table.slots.is_empty());
    }

    proptest! {
        /// The table behaves as a map from id to order (ids drawn from a small set, so
        /// they repeat, collide in their low halves and are removed and reinserted).
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec((0u8..3, 0u128..16, any::<bool>()), 0..200)) {
            let mut table = WorkingOrders::default();
            let mut model: BTreeMap<u128, usize> = BTreeMap::new();
            for (i, (op, small, high)) in ops.into_iter().enumerate() {
                let id = if high { small << 64 | small } else { small };
                match op {
                    0 => {
                        table.insert(id, order(i));
                        model.insert(id, i);
                    }
                    1 => prop_assert_eq!(table.remove(id).map(|p| p.rel.index()), model.remove(&id)),
                    _ => prop_assert_eq!(table.get(id).map(|p| p.rel.index()), model.get(&id).copied()),
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(table.contains(id), model.contains_key(&id));
                let mut all: Vec<(u128, usize)> = table.iter().map(|(k, p)| (k, p.rel.index())).collect();
                all.sort_unstable();
                prop_assert_eq!(all, model.iter().map(|(&k, &r)| (k, r)).collect::<Vec<_>>());
            }
        }
    }
}
