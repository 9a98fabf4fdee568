//! SplitMix64: a tiny, fast generator whose output never changes between
//! versions, so a seed always yields the same population.

/// A SplitMix64 stream.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// The stream for one purpose (`salt`) of one citizen (`index`) under `seed`.
    pub(crate) fn new(seed: u64, index: u64, salt: u64) -> Self {
        let mut r = Self(seed ^ 0x6c69_656e_7468_6f6e);
        r.0 ^= r
            .next_u64()
            .wrapping_add(index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.0 ^= r.next_u64().wrapping_add(salt);
        r
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Picks from `(item, weight)` pairs by weight.
    pub(crate) fn weighted<'a, T>(&mut self, table: &'a [(T, u32)]) -> &'a T {
        let total: u64 = table.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (item, w) in table {
            if x < u64::from(*w) {
                return item;
            }
            x -= u64::from(*w);
        }
        &table[table.len() - 1].0
    }

    /// Picks uniformly from a slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
