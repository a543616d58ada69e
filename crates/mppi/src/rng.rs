//! Deterministic random streams and the normal generator.
//!
//! Every random number the planner draws is a pure function of
//! `(seed, control step, iteration, sample index)`: each sample gets its own xoshiro256++
//! stream seeded from a hash of those four numbers. Work can therefore be split over any number
//! of threads, in any order, and produce bit-identical results.
//!
//! Standard normals come from a 256-layer ziggurat (Marsaglia & Tsang, 2000). [`BlockRng`]
//! holds the streams of a block of samples side by side (structure of arrays) and draws one
//! normal per sample at a time, so the generator, the table lookup and the acceptance test run
//! across samples and vectorize; the rare rejected lanes finish on the scalar path. A lane of a
//! [`BlockRng`] produces exactly the numbers [`SampleRng`] produces from the same seed.

use std::convert::Infallible;
use std::sync::LazyLock;

use rand::{SeedableRng, TryRng};

use crate::objective::BLOCK_LANES;

/// SplitMix64 finalizer: a bijective, well-mixing map on `u64`.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

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
    sample_seed(iteration_prefix(seed, step, iteration), sample)
}

/// The part of [`stream_seed`] shared by every sample of one iteration.
#[inline]
fn iteration_prefix(seed: u64, step: u64, iteration: u64) -> u64 {
    let h = mix64(seed ^ GOLDEN);
    let h = mix64(h ^ step.wrapping_mul(GOLDEN).wrapping_add(1));
    mix64(h ^ iteration.wrapping_mul(GOLDEN).wrapping_add(2))
}

/// [`stream_seed`] from its iteration prefix.
#[inline]
fn sample_seed(prefix: u64, sample: u64) -> u64 {
    mix64(prefix ^ sample.wrapping_mul(GOLDEN).wrapping_add(3))
}

/// The generator for one sample of one iteration of one control step.
#[must_use]
pub fn sample_rng(seed: u64, step: u64, iteration: u64, sample: u64) -> SampleRng {
    SampleRng::seed_from_u64(stream_seed(seed, step, iteration, sample))
}

/// The four xoshiro256++ state words for a 64-bit seed (SplitMix64 expansion, never all zero).
#[inline]
fn expand_seed(seed: u64) -> [u64; 4] {
    let mut z = seed;
    let mut next = || {
        z = z.wrapping_add(GOLDEN);
        mix64(z)
    };
    [next(), next(), next(), next()]
}

/// One xoshiro256++ step on a state held in four words (Blackman & Vigna).
#[inline(always)]
fn xoshiro_step(s0: &mut u64, s1: &mut u64, s2: &mut u64, s3: &mut u64) -> u64 {
    let out = s0.wrapping_add(*s3).rotate_left(23).wrapping_add(*s0);
    let t = *s1 << 17;
    *s2 ^= *s0;
    *s3 ^= *s1;
    *s1 ^= *s2;
    *s0 ^= *s3;
    *s2 ^= t;
    *s3 = s3.rotate_left(45);
    out
}

/// A uniform in `[0, 1)` with 53 random bits.
#[inline(always)]
fn unit_f64(bits: u64) -> f64 {
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform in `[-1, 1)` from the top 52 bits (exponent trick: `[2, 4) − 3`), branch-free
/// and vectorizable; the low 12 bits stay free for the layer index.
#[inline(always)]
fn signed_unit_f64(bits: u64) -> f64 {
    f64::from_bits((bits >> 12) | 0x4000_0000_0000_0000) - 3.0
}

// the rejection flags of a block are read four lanes at a time
const _: () = assert!(BLOCK_LANES.is_multiple_of(4));

/// Number of ziggurat layers.
const LAYERS: usize = 256;
/// Right edge of the base layer (the tail starts here) for 256 layers of `exp(−x²/2)`.
const ZIG_R: f64 = 3.654_152_885_361_009;
/// Area of each layer (base layer including the tail) for 256 layers of `exp(−x²/2)`.
const ZIG_V: f64 = 0.004_928_673_233_99;

/// Layer edges `x[i]` (decreasing, `x[256] = 0`) and heights `f[i] = exp(−x[i]²/2)`.
struct Ziggurat {
    x: [f64; LAYERS + 1],
    f: [f64; LAYERS + 1],
}

/// The layers satisfy `x[i] (f[i+1] − f[i]) = V` for `i ≥ 1`; `x[0] = V / f(R)` makes the base
/// rectangle plus the tail also have area `V`.
static ZIGGURAT: LazyLock<Ziggurat> = LazyLock::new(|| {
    let pdf = |x: f64| (-0.5 * x * x).exp();
    let mut x = [0.0; LAYERS + 1];
    x[0] = ZIG_V / pdf(ZIG_R);
    x[1] = ZIG_R;
    for i in 1..LAYERS - 1 {
        x[i + 1] = (-2.0 * (ZIG_V / x[i] + pdf(x[i])).ln()).sqrt();
    }
    x[LAYERS] = 0.0;
    let mut f = [0.0; LAYERS + 1];
    for (fi, xi) in f.iter_mut().zip(&x) {
        *fi = pdf(*xi);
    }
    Ziggurat { x, f }
});

/// The xoshiro256++ generator of one sample's stream, with a ziggurat normal sampler.
///
/// It implements [`rand::TryRng`], so every `rand` / `rand_distr` distribution works with it.
///
/// ```
/// use mppi::rng::sample_rng;
/// let mut a = sample_rng(7, 0, 0, 3);
/// let mut b = sample_rng(7, 0, 0, 3);
/// let z = a.normal();
/// assert_eq!(z, b.normal());
/// assert!(z.is_finite());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRng {
    s: [u64; 4],
}

impl SampleRng {
    /// The next 64 random bits.
    #[inline]
    pub fn next_bits(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        xoshiro_step(s0, s1, s2, s3)
    }

    /// A uniform draw in `[0, 1)` (53 bits).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        unit_f64(self.next_bits())
    }

    /// A standard normal draw (ziggurat).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        let z = &*ZIGGURAT;
        let bits = self.next_bits();
        let i = (bits & 0xff) as usize;
        let x = signed_unit_f64(bits) * z.x[i];
        if x.abs() < z.x[i + 1] {
            x
        } else {
            self.normal_slow(z, bits)
        }
    }

    /// The rejection branch of [`SampleRng::normal`] for a first draw `bits` that fell outside
    /// the inner rectangle of its layer (about 1% of draws).
    #[cold]
    fn normal_slow(&mut self, z: &Ziggurat, mut bits: u64) -> f64 {
        loop {
            let i = (bits & 0xff) as usize;
            let u = signed_unit_f64(bits);
            let x = u * z.x[i];
            if x.abs() < z.x[i + 1] {
                return x;
            }
            if i == 0 {
                // tail beyond R (Marsaglia 1964): x = R + a with a ~ exp(R) accepted w.p.
                // exp(−a²/2); uniforms in (0, 1] keep the logarithms finite
                loop {
                    let a = -(1.0 - self.uniform()).ln() / ZIG_R;
                    let b = -(1.0 - self.uniform()).ln();
                    if 2.0 * b > a * a {
                        return if u < 0.0 { -(ZIG_R + a) } else { ZIG_R + a };
                    }
                }
            }
            // wedge between the layer's inner and outer rectangle
            let y = z.f[i] + (z.f[i + 1] - z.f[i]) * self.uniform();
            if y < (-0.5 * x * x).exp() {
                return x;
            }
            bits = self.next_bits();
        }
    }
}

impl TryRng for SampleRng {
    type Error = Infallible;
    #[inline]
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.next_bits() >> 32) as u32)
    }
    #[inline]
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next_bits())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_bits().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

impl SeedableRng for SampleRng {
    type Seed = [u8; 32];
    /// The state words from the seed's bytes (little-endian); an all-zero seed, which
    /// xoshiro cannot use, is replaced by the expansion of 0.
    fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (w, c) in s.iter_mut().zip(seed.chunks_exact(8)) {
            *w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        }
        if s == [0; 4] {
            s = expand_seed(0);
        }
        SampleRng { s }
    }
    /// SplitMix64 expansion of `state` into the four state words.
    fn seed_from_u64(state: u64) -> Self {
        SampleRng {
            s: expand_seed(state),
        }
    }
}

/// The streams of up to [`BLOCK_LANES`] consecutive samples, side by side.
///
/// Lane `l` is the stream of sample `first + l`, identical to
/// [`sample_rng`]`(seed, step, iteration, first + l)`.
///
/// ```
/// use mppi::rng::{BlockRng, sample_rng};
/// let mut block = BlockRng::new(5, 1, 0, 64, 8);
/// let mut z = [0.0; 8];
/// block.normals(&mut z);
/// for (l, zl) in z.iter().enumerate() {
///     assert_eq!(*zl, sample_rng(5, 1, 0, 64 + l as u64).normal());
/// }
/// ```
#[derive(Debug, Clone)]
pub struct BlockRng {
    lanes: usize,
    s0: [u64; BLOCK_LANES],
    s1: [u64; BLOCK_LANES],
    s2: [u64; BLOCK_LANES],
    s3: [u64; BLOCK_LANES],
    bits: [u64; BLOCK_LANES],
}

impl BlockRng {
    /// The streams of samples `first .. first + lanes` of `(seed, step, iteration)`.
    ///
    /// # Panics
    /// If `lanes` is 0 or more than [`BLOCK_LANES`].
    #[must_use]
    pub fn new(seed: u64, step: u64, iteration: u64, first: usize, lanes: usize) -> Self {
        assert!(
            (1..=BLOCK_LANES).contains(&lanes),
            "BlockRng holds 1..={BLOCK_LANES} lanes, asked for {lanes}"
        );
        let mut block = BlockRng {
            lanes,
            s0: [0; BLOCK_LANES],
            s1: [0; BLOCK_LANES],
            s2: [0; BLOCK_LANES],
            s3: [0; BLOCK_LANES],
            bits: [0; BLOCK_LANES],
        };
        let prefix = iteration_prefix(seed, step, iteration);
        for l in 0..lanes {
            let [a, b, c, d] = expand_seed(sample_seed(prefix, (first + l) as u64));
            (block.s0[l], block.s1[l], block.s2[l], block.s3[l]) = (a, b, c, d);
        }
        block
    }

    /// Number of lanes (samples) in the block.
    #[must_use]
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// The scalar generator of lane `l`, at its current position.
    #[must_use]
    pub fn lane(&self, l: usize) -> SampleRng {
        SampleRng {
            s: [self.s0[l], self.s1[l], self.s2[l], self.s3[l]],
        }
    }

    /// Store `rng` back as lane `l` (after drawing from [`BlockRng::lane`]).
    pub fn set_lane(&mut self, l: usize, rng: &SampleRng) {
        [self.s0[l], self.s1[l], self.s2[l], self.s3[l]] = rng.s;
    }

    /// One standard normal per lane into `out` (`out.len()` must equal [`BlockRng::lanes`]).
    #[inline]
    pub fn normals(&mut self, out: &mut [f64]) {
        let n = self.lanes;
        let out = &mut out[..n];
        let z = &*ZIGGURAT;
        // Fast path across lanes: generator step, layer lookup, inner-rectangle test.
        for l in 0..n {
            self.bits[l] = xoshiro_step(
                &mut self.s0[l],
                &mut self.s1[l],
                &mut self.s2[l],
                &mut self.s3[l],
            );
        }
        // a rejection flag per lane (u64, the width the vector loop stores, so reading them
        // back forwards from the store buffer), checked four lanes at a time
        let mut flags = [0u64; BLOCK_LANES];
        for ((o, bits), flag) in out.iter_mut().zip(&self.bits[..n]).zip(&mut flags) {
            let i = (bits & 0xff) as usize;
            let x = signed_unit_f64(*bits) * z.x[i];
            *o = x;
            *flag = u64::from(x.abs() >= z.x[i + 1]);
        }
        for (c, group) in flags.chunks_exact(4).enumerate() {
            if group[0] | group[1] | group[2] | group[3] != 0 {
                for (k, flag) in group.iter().enumerate() {
                    let l = 4 * c + k;
                    if *flag != 0 && l < n {
                        let mut rng = self.lane(l);
                        out[l] = rng.normal_slow(z, self.bits[l]);
                        self.set_lane(l, &rng);
                    }
                }
            }
        }
    }

    /// `rows` standard normals per lane into `out` (structure of arrays: row `r` of lane `l` at
    /// `out[r * lanes + l]`, `out.len() = rows · lanes`), drawn in row order from each lane's
    /// stream: the same numbers as `rows` calls of [`BlockRng::normals`].
    ///
    /// ```
    /// use mppi::rng::BlockRng;
    /// let (mut a, mut b) = (BlockRng::new(1, 0, 0, 0, 6), BlockRng::new(1, 0, 0, 0, 6));
    /// let mut many = [0.0; 3 * 6];
    /// a.normal_rows(&mut many);
    /// for row in many.chunks_exact(6) {
    ///     let mut one = [0.0; 6];
    ///     b.normals(&mut one);
    ///     assert_eq!(row, one);
    /// }
    /// ```
    pub fn normal_rows(&mut self, out: &mut [f64]) {
        // (Keeping a group of lanes' states in registers across rows was tried: the compiler
        // then no longer vectorizes the generator, and it was 25% slower.)
        let n = self.lanes;
        for row in out.chunks_exact_mut(n) {
            self.normals(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_have_equal_area() {
        let z = &*ZIGGURAT;
        for i in 1..LAYERS {
            let area = z.x[i] * (z.f[i + 1] - z.f[i]);
            assert!((area - ZIG_V).abs() < 1e-9 * ZIG_V, "layer {i}: {area}");
        }
        // base layer: rectangle up to R plus the tail ∫_R^∞ exp(−x²/2) dx (Simpson on [R, R+12])
        let (n, h) = (20_000, 12.0 / 20_000.0);
        let pdf = |x: f64| (-0.5 * x * x).exp();
        let mut tail = pdf(ZIG_R) + pdf(ZIG_R + 12.0);
        for k in 1..n {
            tail += if k % 2 == 1 { 4.0 } else { 2.0 } * pdf(ZIG_R + k as f64 * h);
        }
        tail *= h / 3.0;
        assert!((ZIG_R * z.f[1] + tail - ZIG_V).abs() < 1e-9 * ZIG_V);
        assert!(z.x[LAYERS - 1] > 0.0 && z.x[LAYERS] == 0.0);
    }

    #[test]
    fn block_lanes_match_scalar_streams() {
        for lanes in [1, 7, BLOCK_LANES] {
            let mut block = BlockRng::new(42, 3, 1, 96, lanes);
            let mut scalars: Vec<SampleRng> = (0..lanes)
                .map(|l| sample_rng(42, 3, 1, 96 + l as u64))
                .collect();
            let mut out = vec![0.0; lanes];
            // enough draws that every lane goes through wedges and (with 2000 × 32) the tail
            for _ in 0..2000 {
                block.normals(&mut out);
                for (o, r) in out.iter().zip(scalars.iter_mut()) {
                    assert_eq!(o.to_bits(), r.normal().to_bits());
                }
            }
            for (l, r) in scalars.iter().enumerate() {
                assert_eq!(&block.lane(l), r);
            }
        }
    }

    #[test]
    fn normal_rows_match_single_rows() {
        for lanes in [1, 3, 8, 13, BLOCK_LANES] {
            let mut a = BlockRng::new(7, 1, 2, 32, lanes);
            let mut b = a.clone();
            let rows = 700;
            let mut many = vec![0.0; rows * lanes];
            a.normal_rows(&mut many);
            let mut one = vec![0.0; lanes];
            for row in many.chunks_exact(lanes) {
                b.normals(&mut one);
                assert!(
                    row.iter()
                        .zip(&one)
                        .all(|(p, q)| p.to_bits() == q.to_bits())
                );
            }
            for l in 0..lanes {
                assert_eq!(a.lane(l), b.lane(l));
            }
        }
    }

    #[test]
    fn normal_moments_and_tails() {
        let mut rng = sample_rng(1, 2, 3, 4);
        let n = 2_000_000;
        let (mut m1, mut m2, mut m4, mut beyond3) = (0.0, 0.0, 0.0, 0usize);
        for _ in 0..n {
            let z = rng.normal();
            m1 += z;
            m2 += z * z;
            m4 += z * z * z * z;
            beyond3 += usize::from(z.abs() > 3.0);
        }
        let nf = n as f64;
        // standard errors: 1/√n, √2/√n, √96/√n; tolerances are 5 standard errors
        assert!((m1 / nf).abs() < 5.0 / nf.sqrt());
        assert!((m2 / nf - 1.0).abs() < 5.0 * 2f64.sqrt() / nf.sqrt());
        assert!((m4 / nf - 3.0).abs() < 5.0 * 96f64.sqrt() / nf.sqrt());
        // P(|z| > 3) = 0.0026998
        let p = beyond3 as f64 / nf;
        let se = (0.0027 * (1.0 - 0.0027) / nf).sqrt();
        assert!((p - 0.0026998).abs() < 5.0 * se, "P(|z|>3) = {p}");
    }

    #[test]
    fn normal_cdf_matches_at_quantiles() {
        // Kolmogorov–Smirnov-style check at fixed quantiles of N(0, 1)
        let quantiles = [
            (-2.326_347_874_040_841, 0.01),
            (-1.281_551_565_544_6, 0.1),
            (-0.674_489_750_196_081_7, 0.25),
            (0.0, 0.5),
            (0.674_489_750_196_081_7, 0.75),
            (1.281_551_565_544_6, 0.9),
            (2.326_347_874_040_841, 0.99),
            (3.090_232_306_167_813, 0.999),
        ];
        let mut rng = sample_rng(9, 0, 0, 0);
        let n = 1_000_000;
        let mut counts = [0usize; 8];
        for _ in 0..n {
            let z = rng.normal();
            for (c, (q, _)) in counts.iter_mut().zip(&quantiles) {
                *c += usize::from(z <= *q);
            }
        }
        for (c, (_, p)) in counts.iter().zip(&quantiles) {
            let est = *c as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((est - p).abs() < 5.0 * se, "P(z <= q) = {est}, want {p}");
        }
    }
}
