//! Which rows train and which validate, and the order of the training rows in each epoch.
//!
//! Both are seeded permutations from one counter-based generator: draw `i` of the stream `key`
//! is [`splitmix64`] of `key + i·γ`, i.e. the `i`-th output of the SplitMix64 generator seeded
//! with `key`. So a permutation is a pure function of its arguments: a resumed run shuffles its
//! remaining epochs exactly as the uninterrupted run would have.

use crate::rng::splitmix64;

/// SplitMix64's increment (2⁶⁴/φ).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
/// Domain separation: the holdout split and the epoch orders use unrelated streams.
const HOLDOUT: u64 = u64::from_be_bytes(*b"\0holdout");
const EPOCH: u64 = u64::from_be_bytes(*b"\0\0\0epoch");
const BLOCKS: u64 = u64::from_be_bytes(*b"\0\0blocks");
const WINDOW: u64 = u64::from_be_bytes(*b"\0\0window");

/// Draw `i` of the stream `key`: the `i`-th output (from 0) of SplitMix64 seeded with `key`.
fn draw(key: u64, i: u64) -> u64 {
    splitmix64(key.wrapping_add(i.wrapping_mul(GAMMA)))
}

/// The key of stream `index` of `domain` for `seed`.
fn key(seed: u64, domain: u64, index: u64) -> u64 {
    splitmix64(splitmix64(seed ^ domain) ^ index)
}

/// A uniformly random permutation of `0..n` (Fisher–Yates) from the stream `key`. The swap
/// partner of position `i` comes from draw `i` scaled to `0..=i` by a 128-bit multiply: the
/// bias is at most n/2⁶⁴, far below anything a shuffle can show.
fn permutation(n: usize, key: u64) -> Vec<u32> {
    assert!(
        n <= u32::MAX as usize + 1,
        "{n} rows do not fit u32 indices"
    );
    let mut order: Vec<u32> = (0..n).map(|i| i as u32).collect();
    for i in (1..n).rev() {
        let j = ((draw(key, i as u64) as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}

/// Splits `rows` rows into `(train, validation)` row indices, both sorted: `round(rows ·
/// val_frac)` rows, drawn by a permutation seeded with `seed`, validate; the rest train.
pub fn holdout_split(
    rows: usize,
    val_frac: f64,
    seed: u64,
) -> Result<(Vec<u32>, Vec<u32>), String> {
    let val = validation_rows(rows, val_frac)?;
    let order = permutation(rows, key(seed, HOLDOUT, 0));
    let (mut validation, mut train) = (order[..val].to_vec(), order[val..].to_vec());
    validation.sort_unstable();
    train.sort_unstable();
    Ok((train, validation))
}

/// [`holdout_split`] as one bit per row: the same rows validate, and the split takes `rows`/8
/// bytes once made (the permutation it is drawn from, 4 bytes a row, only while it is made;
/// nothing with `val_frac` 0). For a table streamed rather than held.
#[derive(Clone, Debug, PartialEq)]
pub struct Holdout {
    words: Vec<u64>,
    /// The number of validation rows.
    pub val: usize,
}

impl Holdout {
    /// Whether row `i` validates (rows past the end train).
    pub fn is_val(&self, i: u64) -> bool {
        usize::try_from(i / 64)
            .ok()
            .and_then(|w| self.words.get(w))
            .is_some_and(|word| word >> (i % 64) & 1 == 1)
    }
}

/// The split of [`holdout_split`] as a [`Holdout`], with the same checks and messages.
pub fn holdout_mask(rows: usize, val_frac: f64, seed: u64) -> Result<Holdout, String> {
    let val = validation_rows(rows, val_frac)?;
    let mut words = Vec::new();
    if val > 0 {
        words = vec![0u64; rows.div_ceil(64)];
        for &r in &permutation(rows, key(seed, HOLDOUT, 0))[..val] {
            words[r as usize / 64] |= 1 << (r % 64);
        }
    }
    Ok(Holdout { words, val })
}

/// The number of validation rows of the split, or why `rows` and `val_frac` make none.
fn validation_rows(rows: usize, val_frac: f64) -> Result<usize, String> {
    if !(0.0..1.0).contains(&val_frac) {
        return Err(format!(
            "--val-frac {} is out of range; use a fraction in [0, 1), e.g. 0.2",
            crate::error::shown(val_frac)
        ));
    }
    if rows > u32::MAX as usize {
        return Err(format!(
            "{rows} rows are more than the {} this handles",
            u32::MAX
        ));
    }
    let val = (rows as f64 * val_frac).round() as usize;
    if rows < 2 {
        return Err(format!(
            "{rows} data row{} too few to train on; at least 2 are needed",
            if rows == 1 { " is" } else { "s are" }
        ));
    }
    if rows - val < 2 {
        return Err(format!(
            "--val-frac {} of {rows} rows leaves {} training row{}; at least 2 are needed (use more rows or a smaller --val-frac)",
            crate::error::shown(val_frac),
            rows - val,
            if rows - val == 1 { "" } else { "s" }
        ));
    }
    if val_frac > 0.0 && val == 0 {
        return Err(format!(
            "--val-frac {} of {rows} rows leaves no validation rows; use more rows or --val-frac 0",
            crate::error::shown(val_frac)
        ));
    }
    Ok(val)
}

/// The order in which to visit `n` training rows (positions `0..n` in the training set) in
/// epoch `epoch`: a fresh permutation for every `(seed, epoch)`, and always the same one for it.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    permutation(n, key(seed, EPOCH, epoch))
}

/// An out-of-core epoch's order of `blocks` blocks of rows: a fresh permutation for every
/// `(seed, epoch)`, from a stream of its own (not [`epoch_permutation`]'s).
pub fn block_order(blocks: usize, seed: u64, epoch: u64) -> Vec<u32> {
    permutation(blocks, key(seed, BLOCKS, epoch))
}

/// The order of the `n` training rows of window `window` of an out-of-core epoch: a fresh
/// permutation for every `(seed, epoch, window)`.
pub fn window_permutation(n: usize, seed: u64, epoch: u64, window: u64) -> Vec<u32> {
    permutation(n, splitmix64(key(seed, WINDOW, epoch) ^ window))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_split_draws_are_splitmix64_outputs() {
        // SplitMix64 seeded with 1234567 (published test vector, e.g. Rosetta Code).
        let expected: [u64; 5] = [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for (i, e) in expected.into_iter().enumerate() {
            assert_eq!(draw(1234567, i as u64), e);
        }
    }

    fn is_permutation(order: &[u32]) -> bool {
        let mut sorted = order.to_vec();
        sorted.sort_unstable();
        sorted.iter().enumerate().all(|(i, &v)| v as usize == i)
    }

    #[test]
    fn table_epoch_permutations_are_deterministic_permutations_that_differ() {
        for n in [0, 1, 2, 7, 1000] {
            assert!(is_permutation(&epoch_permutation(n, 3, 0)), "n = {n}");
        }
        let a = epoch_permutation(1000, 3, 0);
        assert_eq!(a, epoch_permutation(1000, 3, 0));
        assert_ne!(a, epoch_permutation(1000, 3, 1));
        assert_ne!(a, epoch_permutation(1000, 4, 0));
        assert_ne!(a, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn table_block_and_window_orders_are_their_own_permutations() {
        let blocks = block_order(100, 3, 0);
        assert!(is_permutation(&blocks));
        assert_eq!(blocks, block_order(100, 3, 0));
        assert_ne!(blocks, block_order(100, 3, 1));
        assert_ne!(blocks, epoch_permutation(100, 3, 0));
        let window = window_permutation(100, 3, 0, 0);
        assert!(is_permutation(&window));
        assert_ne!(window, window_permutation(100, 3, 0, 1));
        assert_ne!(window, window_permutation(100, 3, 1, 0));
        assert_ne!(window, blocks);
    }

    #[test]
    fn table_epoch_permutations_are_uniform() {
        // Where element 0 lands over 6000 shuffles of 6: each position ~1000 times.
        let mut counts = [0u32; 6];
        for epoch in 0..6000 {
            let order = epoch_permutation(6, 11, epoch);
            counts[order.iter().position(|&v| v == 0).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&c| (880..1120).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn table_holdout_split_sizes_order_and_seed() {
        let (train, val) = holdout_split(10, 0.2, 5).unwrap();
        assert_eq!((train.len(), val.len()), (8, 2));
        assert!(train.is_sorted() && val.is_sorted());
        let mut all = [train.clone(), val.clone()].concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<u32>>());
        assert_eq!(holdout_split(10, 0.2, 5).unwrap(), (train, val.clone()));
        assert_ne!(holdout_split(10, 0.2, 6).unwrap().1, val);
        // round(): 0.25 of 10 is 2.5 → 3.
        assert_eq!(holdout_split(10, 0.25, 5).unwrap().1.len(), 3);
        assert_eq!(
            holdout_split(4, 0.0, 5).unwrap(),
            (vec![0, 1, 2, 3], vec![])
        );
    }

    #[test]
    fn table_holdout_mask_is_the_split() {
        for (rows, frac, seed) in [(10, 0.2, 5), (1000, 0.25, 1), (129, 0.5, 9), (7, 0.0, 3)] {
            let (_, val) = holdout_split(rows, frac, seed).unwrap();
            let mask = holdout_mask(rows, frac, seed).unwrap();
            let from_mask: Vec<u32> = (0..rows as u32)
                .filter(|&i| mask.is_val(i.into()))
                .collect();
            assert_eq!(from_mask, val);
            assert_eq!(mask.val, val.len());
        }
        assert_eq!(
            holdout_mask(3, 0.1, 0).unwrap_err(),
            holdout_split(3, 0.1, 0).unwrap_err()
        );
    }

    #[test]
    fn table_holdout_split_errors() {
        assert_eq!(
            holdout_split(3, 0.1, 0).unwrap_err(),
            "--val-frac 0.1 of 3 rows leaves no validation rows; use more rows or --val-frac 0"
        );
        assert_eq!(
            holdout_split(1, 0.0, 0).unwrap_err(),
            "1 data row is too few to train on; at least 2 are needed"
        );
        assert_eq!(
            holdout_split(4, 0.7, 0).unwrap_err(),
            "--val-frac 0.7 of 4 rows leaves 1 training row; at least 2 are needed (use more rows or a smaller --val-frac)"
        );
        assert_eq!(holdout_split(4, 0.6, 0).unwrap().0.len(), 2);
        assert_eq!(
            holdout_split(0, 0.5, 0).unwrap_err(),
            "0 data rows are too few to train on; at least 2 are needed"
        );
        for bad in [1.0, -0.1, f64::NAN] {
            assert_eq!(
                holdout_split(100, bad, 0).unwrap_err(),
                format!("--val-frac {bad} is out of range; use a fraction in [0, 1), e.g. 0.2")
            );
        }
    }
}
