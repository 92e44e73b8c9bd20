//! Users items whose `sub` the pool no longer has, found without holding either side in memory.
//!
//! The walk adds every user of the pool that has a live users item ([`SubDifference::add_listed`]);
//! the scan of the users table adds every live item ([`SubDifference::add_stored`]). A sub seen
//! on both sides cancels out exactly, so what is left is the difference, which
//! [`SubDifference::decode`] lists, as long as it is smaller than about
//! [`SubDifference::CAPACITY`]. This is an invertible Bloom lookup table (Goodrich and
//! Mitzenmacher, 2011): each sub is added to one cell in each of [`PARTITIONS`] partitions; a
//! cell holds the count of subs added (listed +1, stored -1), the XOR of their keys and the XOR
//! of a check hash of each key, so a cell holding one sub is recognised and peeled off.
//!
//! Its size is fixed (`4 × 1024` cells of 28 bytes), so a run over ten million users carries the
//! same state as one over ten, and it goes into the cursor between invocations. Most cells are
//! zero once both sides have been added, and only the others are encoded.

use thiserror::Error;

/// Cells are split into this many partitions; each sub has one cell in each.
pub const PARTITIONS: usize = 4;
/// Cells per partition.
pub const CELLS_PER_PARTITION: usize = 1024;
const CELLS: usize = PARTITIONS * CELLS_PER_PARTITION;
/// Version byte of the encoding.
const ENCODING: u8 = 1;
/// Bytes of one encoded cell: index (2), count (4), keys (16), checks (8).
const CELL_BYTES: usize = 2 + 4 + 16 + 8;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cell {
    count: i32,
    keys: u128,
    checks: u64,
}

impl Cell {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The one sub this cell holds, and on which side, if it holds exactly one.
    fn pure(&self) -> Option<(u128, i32)> {
        (matches!(self.count, 1 | -1) && self.checks == check(self.keys)).then_some((self.keys, self.count))
    }
}

/// The difference between the subs the walk listed and those the scan stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubDifference {
    cells: Vec<Cell>,
}

/// What [`SubDifference::decode`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Listed by the walk, not stored: a live item at walk time that the scan found gone or a
    /// tombstone (a deletion the consumer applied during the run).
    pub only_listed: Vec<u128>,
    /// Stored, not listed: a live item whose sub the pool did not have when it was walked.
    pub only_stored: Vec<u128>,
    /// False when the difference was too large to list whole; the subs above are still right.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DifferenceError {
    #[error("the set difference is not in encoding {ENCODING} (first byte {0})")]
    UnknownEncoding(u8),
    #[error("the set difference's encoding is truncated or has trailing bytes")]
    BadLength,
    #[error("the set difference names cell {0}, beyond its {CELLS} cells, or a cell twice")]
    BadCell(usize),
}

impl Default for SubDifference {
    fn default() -> Self {
        Self::new()
    }
}

impl SubDifference {
    /// About this many differences decode whole (the peeling threshold of four hash functions is
    /// 1.3 cells per entry; a margin below it keeps failures rare).
    pub const CAPACITY: usize = CELLS * 2 / 3;

    pub fn new() -> Self {
        Self {
            cells: vec![Cell::default(); CELLS],
        }
    }

    /// A sub the walk listed with a live users item.
    pub fn add_listed(&mut self, key: u128) {
        self.apply(key, 1);
    }

    /// A live users item the scan read.
    pub fn add_stored(&mut self, key: u128) {
        self.apply(key, -1);
    }

    fn apply(&mut self, key: u128, sign: i32) {
        let key_check = check(key);
        for index in cell_indexes(key) {
            let cell = &mut self.cells[index];
            cell.count = cell.count.wrapping_add(sign);
            cell.keys ^= key;
            cell.checks ^= key_check;
        }
    }

    /// Whether nothing differs (every sub added on one side was added on the other).
    pub fn is_empty(&self) -> bool {
        self.cells.iter().all(Cell::is_empty)
    }

    /// Lists the difference by peeling cells that hold one sub.
    pub fn decode(&self) -> Decoded {
        let mut cells = self.clone();
        let mut decoded = Decoded::default();
        let mut candidates: Vec<usize> = (0..CELLS).collect();
        while let Some(index) = candidates.pop() {
            let Some((key, sign)) = cells.cells[index].pure() else {
                continue;
            };
            match sign {
                1 => decoded.only_listed.push(key),
                _ => decoded.only_stored.push(key),
            }
            cells.apply(key, -sign);
            candidates.extend(cell_indexes(key));
        }
        decoded.complete = cells.is_empty();
        decoded.only_listed.sort_unstable();
        decoded.only_stored.sort_unstable();
        decoded
    }

    /// The non-empty cells, each with its index.
    pub fn to_bytes(&self) -> Vec<u8> {
        let used: Vec<(usize, &Cell)> = self
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_empty())
            .collect();
        let mut bytes = Vec::with_capacity(1 + used.len() * CELL_BYTES);
        bytes.push(ENCODING);
        for (index, cell) in used {
            // CELLS is 4096: every index fits in two bytes.
            bytes.extend_from_slice(&(index as u16).to_le_bytes());
            bytes.extend_from_slice(&cell.count.to_le_bytes());
            bytes.extend_from_slice(&cell.keys.to_le_bytes());
            bytes.extend_from_slice(&cell.checks.to_le_bytes());
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DifferenceError> {
        let (&encoding, body) = bytes.split_first().ok_or(DifferenceError::BadLength)?;
        if encoding != ENCODING {
            return Err(DifferenceError::UnknownEncoding(encoding));
        }
        if body.len() % CELL_BYTES != 0 {
            return Err(DifferenceError::BadLength);
        }
        let mut difference = Self::new();
        for entry in body.chunks_exact(CELL_BYTES) {
            let index = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
            let cell = Cell {
                count: i32::from_le_bytes(entry[2..6].try_into().expect("4 bytes")),
                keys: u128::from_le_bytes(entry[6..22].try_into().expect("16 bytes")),
                checks: u64::from_le_bytes(entry[22..30].try_into().expect("8 bytes")),
            };
            let slot = difference
                .cells
                .get_mut(index)
                .ok_or(DifferenceError::BadCell(index))?;
            if !slot.is_empty() || cell.is_empty() {
                return Err(DifferenceError::BadCell(index));
            }
            *slot = cell;
        }
        Ok(difference)
    }
}

/// The cell of `key` in each partition.
fn cell_indexes(key: u128) -> [usize; PARTITIONS] {
    std::array::from_fn(|partition| {
        let seed = 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(partition as u64 + 1);
        partition * CELLS_PER_PARTITION + (mix(key, seed) % CELLS_PER_PARTITION as u64) as usize
    })
}

fn check(key: u128) -> u64 {
    mix(key, 0xD6E8_FEB8_6659_FD93)
}

/// A fixed 64-bit hash of a 128-bit key (splitmix64's finaliser over both halves). Fixed, not
/// `std`'s randomly seeded hasher: a cursor written by one invocation is read by another.
fn mix(key: u128, seed: u64) -> u64 {
    let finalise = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let high = (key >> 64) as u64;
    let low = key as u64;
    finalise(
        finalise(low ^ seed)
            .wrapping_add(high)
            .wrapping_add(seed.rotate_left(17)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u64) -> u128 {
        // Subs are random UUIDs; spread test keys the same way.
        u128::from(mix(u128::from(n), 1)) << 64 | u128::from(mix(u128::from(n), 2))
    }

    #[test]
    fn subs_seen_on_both_sides_cancel_and_the_rest_is_listed() {
        let mut difference = SubDifference::new();
        for n in 0..50_000 {
            difference.add_listed(key(n));
        }
        // The scan reads them in another order, plus two items the pool no longer has, and
        // misses one that was deleted with a signal meanwhile.
        for n in (1..50_000).rev() {
            difference.add_stored(key(n));
        }
        difference.add_stored(key(70_000));
        difference.add_stored(key(70_001));
        let decoded = difference.decode();
        assert!(decoded.complete);
        let mut gone = vec![key(70_000), key(70_001)];
        gone.sort_unstable();
        assert_eq!(decoded.only_stored, gone);
        assert_eq!(decoded.only_listed, vec![key(0)]);
    }

    #[test]
    fn nothing_differs_is_empty_and_encodes_to_one_byte() {
        let mut difference = SubDifference::new();
        for n in 0..1_000 {
            difference.add_listed(key(n));
            difference.add_stored(key(n));
        }
        assert!(difference.is_empty());
        assert_eq!(difference.to_bytes(), vec![ENCODING]);
        assert_eq!(
            difference.decode(),
            Decoded {
                complete: true,
                ..Decoded::default()
            }
        );
    }

    #[test]
    fn up_to_capacity_decodes_whole_and_far_beyond_it_says_so() {
        let mut within = SubDifference::new();
        for n in 0..SubDifference::CAPACITY as u64 {
            within.add_stored(key(n));
        }
        let decoded = within.decode();
        assert!(decoded.complete);
        assert_eq!(decoded.only_stored.len(), SubDifference::CAPACITY);

        let mut beyond = SubDifference::new();
        for n in 0..(3 * CELLS) as u64 {
            beyond.add_stored(key(n));
        }
        let decoded = beyond.decode();
        assert!(
            !decoded.complete,
            "an overflow is reported, not taken for the whole answer"
        );
        let all: std::collections::BTreeSet<u128> = (0..(3 * CELLS) as u64).map(key).collect();
        assert!(
            decoded.only_stored.iter().all(|k| all.contains(k)),
            "what it lists is right"
        );
    }

    #[test]
    fn a_full_table_encodes_under_the_cursor_budget() {
        let mut difference = SubDifference::new();
        for n in 0..100_000 {
            difference.add_listed(key(n));
        }
        let bytes = difference.to_bytes();
        assert_eq!(bytes.len(), 1 + CELLS * CELL_BYTES);
        assert_eq!(SubDifference::from_bytes(&bytes).unwrap(), difference);
    }

    #[test]
    fn a_damaged_encoding_is_refused() {
        let mut difference = SubDifference::new();
        difference.add_listed(key(1));
        let bytes = difference.to_bytes();
        assert_eq!(SubDifference::from_bytes(&[]), Err(DifferenceError::BadLength));
        assert_eq!(
            SubDifference::from_bytes(&[9]),
            Err(DifferenceError::UnknownEncoding(9))
        );
        assert_eq!(
            SubDifference::from_bytes(&bytes[..bytes.len() - 1]),
            Err(DifferenceError::BadLength)
        );
        let mut twice = bytes.clone();
        twice.extend_from_slice(&bytes[1..1 + CELL_BYTES]);
        assert!(matches!(
            SubDifference::from_bytes(&twice),
            Err(DifferenceError::BadCell(_))
        ));
        let mut beyond = bytes.clone();
        beyond[1..3].copy_from_slice(&(CELLS as u16).to_le_bytes());
        assert_eq!(
            SubDifference::from_bytes(&beyond),
            Err(DifferenceError::BadCell(CELLS))
        );
    }

    proptest! {
        #[test]
        fn any_small_difference_is_decoded_exactly(
            common in proptest::collection::btree_set(any::<u128>(), 0..300),
            listed_only in proptest::collection::btree_set(any::<u128>(), 0..40),
            stored_only in proptest::collection::btree_set(any::<u128>(), 0..40),
        ) {
            let listed_only: Vec<u128> = listed_only.difference(&common).copied().collect();
            let stored_only: Vec<u128> = stored_only
                .iter()
                .filter(|k| !common.contains(k) && !listed_only.contains(k))
                .copied()
                .collect();
            let mut difference = SubDifference::new();
            for k in common.iter().chain(&listed_only) {
                difference.add_listed(*k);
            }
            for k in common.iter().chain(&stored_only) {
                difference.add_stored(*k);
            }
            let round_trip = SubDifference::from_bytes(&difference.to_bytes()).unwrap();
            let decoded = round_trip.decode();
            prop_assert!(decoded.complete);
            prop_assert_eq!(decoded.only_listed, listed_only);
            prop_assert_eq!(decoded.only_stored, stored_only);
        }
    }
}
