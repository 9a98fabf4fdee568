//! Deterministic draws for sector data: the same population seed, Pid and
//! salt give the same numbers on every machine and every version (SplitMix64,
//! written out here so no crate upgrade can change anyone's records).

use lienthong_proto::Pid;

/// A stream of numbers for one citizen and one purpose.
pub struct Draw(u64);

impl Draw {
    /// The stream for `pid` in the population of `seed`, separated by `salt`.
    pub fn new(seed: u64, pid: Pid, salt: u64) -> Self {
        let mut d = Self(seed ^ 0x6C69_656E_7468_6F6E);
        d.0 ^= d.bits().wrapping_add(pid.as_u64());
        d.0 ^= d.bits().wrapping_add(salt);
        d
    }

    /// The next 64 random bits.
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.bits()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.bits() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` decimal digits.
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_stream_other_salt_other_stream() {
        let pid: Pid = "001085000123".parse().unwrap();
        let a: Vec<u64> = (0..4)
            .map({
                let mut d = Draw::new(1, pid, 7);
                move |_| d.bits()
            })
            .collect();
        let b: Vec<u64> = (0..4)
            .map({
                let mut d = Draw::new(1, pid, 7);
                move |_| d.bits()
            })
            .collect();
        let c = Draw::new(1, pid, 8).bits();
        assert_eq!(a, b);
        assert_ne!(a[0], c);
        let mut d = Draw::new(2, pid, 7);
        assert!((0..1000).all(|_| d.below(6) < 6));
    }
}
