//! Deterministic random streams.
//!
//! Every random number the planner draws is a pure function of
//! `(seed, control step, iteration, sample index)`: each sample gets its own generator seeded
//! from a hash of those four numbers. Work can therefore be split over any number of threads,
//! in any order, and produce bit-identical results.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// The generator used for one sample's noise.
pub type SampleRng = Xoshiro256PlusPlus;

/// SplitMix64 finalizer: a bijective, well-mixing map on `u64`.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hash `(seed, step, iteration, sample)` into one 64-bit stream seed.
///
/// ```
/// use mppi::rng::stream_seed;
/// assert_eq!(stream_seed(1, 2, 3, 4), stream_seed(1, 2, 3, 4));
/// assert_ne!(stream_seed(1, 2, 3, 4), stream_seed(1, 2, 3, 5));
/// assert_ne!(stream_seed(1, 2, 3, 4), stream_seed(1, 2, 4, 3));
/// ```
#[must_use]
pub fn stream_seed(seed: u64, step: u64, iteration: u64, sample: u64) -> u64 {
    const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = mix64(seed ^ GOLDEN);
    h = mix64(h ^ step.wrapping_mul(GOLDEN).wrapping_add(1));
    h = mix64(h ^ iteration.wrapping_mul(GOLDEN).wrapping_add(2));
    mix64(h ^ sample.wrapping_mul(GOLDEN).wrapping_add(3))
}

/// The generator for one sample of one iteration of one control step.
#[must_use]
pub fn sample_rng(seed: u64, step: u64, iteration: u64, sample: u64) -> SampleRng {
    SampleRng::seed_from_u64(stream_seed(seed, step, iteration, sample))
}
