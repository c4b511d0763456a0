//! Live mode's working copy orders, by client order id.
//!
//! A fills batch looks up one working order per fill, right after a fan-out (and the
//! daemon's Python) has pushed the table out of cache, so the table's size is what a
//! batch costs. The index maps an id to a slot in 24 bytes per bucket; the entries sit in
//! a slab, in the order the fan-out sent them, which is also the order the venue
//! reports them (a `HashMap<u128, Pending>` bucket is 80 bytes, and random).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::fixed::{Money, Price, Qty};
use crate::model::{RelId, Side, SymbolId};

/// A copy order working at the venue (live mode).
#[derive(Debug, Clone, Copy)]
pub struct Pending {
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

impl Pending {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[derive(Debug, Default)]
pub struct PendingTable {
    index: HashMap<Key, u32, BuildHasherDefault<IdHasher>>,
    slots: Vec<Option<(Key, Pending)>>,
    /// Free slots, reused last-freed first.
    free: Vec<u32>,
}

impl PendingTable {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, id: u128) -> bool {
        self.index.contains_key(&Key::of(id))
    }

    pub fn get(&self, id: u128) -> Option<&Pending> {
        let slot = *self.index.get(&Key::of(id))?;
        self.slots[slot as usize].as_ref().map(|(_, p)| p)
    }

    /// Add or replace the order `id`.
    pub fn insert(&mut self, id: u128, pending: Pending) {
        let key = Key::of(id);
        if let Some(&slot) = self.index.get(&key) {
            self.slots[slot as usize] = Some((key, pending));
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some((key, pending));
                slot
            }
            None => {
                self.slots.push(Some((key, pending)));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
    }

    pub fn remove(&mut self, id: u128) -> Option<Pending> {
        let slot = self.index.remove(&Key::of(id))?;
        let (_, pending) = self.slots[slot as usize].take()?;
        self.free.push(slot);
        if self.index.is_empty() {
            // drained: start the slab over, so it stays in send order
            self.slots.clear();
            self.free.clear();
        }
        Some(pending)
    }

    /// Every working order, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u128, Pending)> + '_ {
        self.slots.iter().flatten().map(|&(key, p)| (key.id(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn order(rel: RelId) -> Pending {
        Pending::close(rel, 0, Side::Sell, Qty(1))
    }

    proptest! {
        /// The table behaves as a map from id to order (ids drawn from a small set, so
        /// they repeat, collide in their low halves and are removed and reinserted).
        #[test]
        fn behaves_as_a_map(ops in prop::collection::vec((0u8..3, 0u128..16, any::<bool>()), 0..200)) {
            let mut table = PendingTable::default();
            let mut model: BTreeMap<u128, RelId> = BTreeMap::new();
            for (i, (op, small, high)) in ops.into_iter().enumerate() {
                let id = if high { small << 64 | small } else { small };
                match op {
                    0 => {
                        table.insert(id, order(i as RelId));
                        model.insert(id, i as RelId);
                    }
                    1 => prop_assert_eq!(table.remove(id).map(|p| p.rel), model.remove(&id)),
                    _ => prop_assert_eq!(table.get(id).map(|p| p.rel), model.get(&id).copied()),
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(table.contains(id), model.contains_key(&id));
                let mut all: Vec<(u128, RelId)> = table.iter().map(|(k, p)| (k, p.rel)).collect();
                all.sort_unstable();
                prop_assert_eq!(all, model.iter().map(|(&k, &r)| (k, r)).collect::<Vec<_>>());
            }
        }
    }
}
