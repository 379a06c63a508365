//! The row orders of a table's epochs, one after the other, with the next epoch's order drawn
//! on a thread of its own while this epoch trains when the table is large: a shuffle of
//! 800,000 rows takes ~1 ms (random swaps across a 3 MB array), about a tenth of a fused
//! epoch. The order is [`epoch_permutation`]`(rows, seed, epoch)` whoever draws it, so the
//! lookahead changes nothing but when it is drawn.

use std::thread::JoinHandle;

use super::epoch_permutation;

/// Tables of at least this many rows draw the next epoch's order ahead (a thread per epoch
/// costs tens of µs: more than a small table's whole shuffle).
pub const LOOKAHEAD_MIN_ROWS: usize = 1 << 16;

/// Epoch orders of `rows` rows for `seed`, the current one kept.
#[derive(Debug)]
pub struct EpochOrders {
    rows: usize,
    seed: u64,
    current: Option<(u64, Vec<u32>)>,
    ahead: Option<(u64, JoinHandle<Vec<u32>>)>,
}

impl EpochOrders {
    /// The orders of `rows` training rows shuffled with `seed`.
    pub fn new(rows: usize, seed: u64) -> Self {
        Self {
            rows,
            seed,
            current: None,
            ahead: None,
        }
    }

    /// Epoch `epoch`'s order; for a large table, also starts drawing epoch `epoch + 1`'s.
    pub fn get(&mut self, epoch: u64) -> &[u32] {
        if self.current.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let drawn = match self.ahead.take() {
                // A drawing thread can only fail by panicking; draw again here then.
                Some((e, handle)) if e == epoch => handle.join().ok(),
                _ => None,
            };
            let order = drawn.unwrap_or_else(|| epoch_permutation(self.rows, self.seed, epoch));
            self.current = Some((epoch, order));
            if self.rows >= LOOKAHEAD_MIN_ROWS {
                let (rows, seed, next) = (self.rows, self.seed, epoch + 1);
                self.ahead = std::thread::Builder::new()
                    .name("burnfit-shuffle".into())
                    .spawn(move || epoch_permutation(rows, seed, next))
                    .ok()
                    .map(|handle| (next, handle));
            }
        }
        &self.current.as_ref().expect("set above").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_gets_its_own_permutation_in_any_order_of_requests() {
        for rows in [10, LOOKAHEAD_MIN_ROWS + 3] {
            let mut orders = EpochOrders::new(rows, 7);
            // Forward, a repeat, a jump back (a resume), a jump ahead.
            for epoch in [0, 1, 1, 2, 0, 5, 6] {
                assert_eq!(
                    orders.get(epoch),
                    &epoch_permutation(rows, 7, epoch)[..],
                    "{rows} rows, epoch {epoch}"
                );
            }
        }
        assert_ne!(epoch_permutation(10, 7, 0), epoch_permutation(10, 7, 1));
    }
}
