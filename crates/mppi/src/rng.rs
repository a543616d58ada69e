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
//!
//! Two generators of standard normals, chosen by the config key `normals` ([`Normals`]):
//! `exact` (the default) is the ziggurat in `f64` with a 52-bit uniform, one 64-bit draw per
//! normal; `fast` is the same 256-layer ziggurat in `f32` on 32-bit halves of the draws (8-bit
//! layer, 23-bit uniform), two normals per 64-bit draw and eight lanes per AVX2 vector. Its
//! normals are `f32` values (a grid of 2⁻²³ of the layer width, about 1e-7 relative), with the
//! same tails; both are deterministic per sample stream.

use std::convert::Infallible;
use std::sync::LazyLock;

use rand::{SeedableRng, TryRng};

pub use crate::config::Normals;
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
    let mut rng = SampleRng::seed_from_u64(stream_seed(seed, step, iteration, sample));
    rng.index = sample;
    rng
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

/// A uniform in `[-1, 1)` from the top 23 bits of a 32-bit draw (the float32 exponent trick);
/// the low 8 bits stay free for the layer index.
#[inline(always)]
fn signed_unit_f32(bits: u32) -> f32 {
    f32::from_bits((bits >> 9) | 0x4000_0000) - 3.0
}

// the rejection flags of a block are read four (f64) or eight (f32) lanes at a time
const _: () = assert!(BLOCK_LANES.is_multiple_of(8));

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

/// `ln x` in `f32` for `x > 0` normal: `x = m 2ᵉ` with `m ∈ [√½, √2)`, then
/// `ln m = 2 atanh s = 2 (s + s³/3 + … + s⁹/9)` with `s = (m − 1)/(m + 1)`, `|s| ≤ 0.172` (the
/// next term is below `4e-10`). Branch-free, so it vectorizes.
#[inline(always)]
fn ln_f32(x: f32) -> f32 {
    // bias the bits so the exponent field rounds at √½ instead of 1
    let ix = x.to_bits().wrapping_add(0x3f80_0000 - 0x3f35_04f3);
    let e = ((ix >> 23) as i32 - 127) as f32;
    let m = f32::from_bits((ix & 0x007f_ffff) + 0x3f35_04f3);
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    e * std::f32::consts::LN_2 + 2.0 * (s + s * series)
}

/// Two independent standard normals from one 64-bit draw (Box–Muller in `f32`).
///
/// The lower 23 bits of the lower half give `u ∈ (0, 1)` on the midpoints `(k + ½) 2⁻²³`,
/// hence the radius `r = √(−2 ln u)` (up to `√(2·24 ln 2) ≈ 5.77`: the `P(|z| > 5.77) ≈ 8e-9`
/// beyond is cut off). The upper half gives the angle: its top 23 bits `r₀ ∈ [−π/4, π/4)` and
/// its low 2 bits a quarter turn `q`, so `θ = r₀ + q π/2` is uniform on the circle, and
/// `(cos θ, sin θ)` is `(cos r₀, sin r₀)` turned by `q` quarter turns (a swap and sign flips):
/// no range reduction. Taylor polynomials to degrees 9 and 10 on `|r₀| ≤ π/4` (truncation below
/// `2e-9`).
#[inline(always)]
fn box_muller_f32(bits: u64) -> (f32, f32) {
    box_muller_halves(bits as u32, (bits >> 32) as u32)
}

/// [`box_muller_f32`] on the lower and upper halves of the draw.
#[inline(always)]
fn box_muller_halves(lo: u32, hi: u32) -> (f32, f32) {
    // 1 + k 2⁻²³ − (1 − 2⁻²⁴) = (k + ½) 2⁻²³, exactly
    let u = f32::from_bits((lo >> 9) | 0x3f80_0000) - (1.0 - 1.0 / 16_777_216.0);
    let r = (-2.0 * ln_f32(u)).sqrt();
    let a = std::f32::consts::FRAC_PI_4 * signed_unit_f32(hi);
    let a2 = a * a;
    let sin =
        a + a * a2 * (-1.0 / 6.0 + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5040.0 + a2 / 362_880.0)));
    let cos = 1.0 - 0.5 * a2
        + a2 * a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 + a2 * (1.0 / 40_320.0 - a2 / 3_628_800.0)));
    // turn (cos, sin) by q quarter turns: q = 0: (c, s), 1: (−s, c), 2: (−c, −s), 3: (s, −c)
    let q = hi & 3;
    let (x, y) = if q & 1 == 0 { (cos, sin) } else { (sin, cos) };
    let flip_x = ((q ^ (q >> 1)) & 1) << 31;
    let flip_y = (q >> 1) << 31;
    (
        f32::from_bits((r * x).to_bits() ^ flip_x),
        f32::from_bits((r * y).to_bits() ^ flip_y),
    )
}

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
    normals: Normals,
    /// [`Normals::Fast`]: the second normal of the last draw's pair (`f32` bits), not used yet.
    pending: Option<u32>,
    /// Which sample of its iteration this stream draws ([`SampleRng::sample_index`]).
    index: u64,
}

impl SampleRng {
    /// The index of the sample of its iteration this stream belongs to (`sample` of
    /// [`sample_rng`], `first + l` for lane `l` of a [`BlockRng`]; 0 for a generator seeded
    /// directly). A proposal that puts fixed members at given places of the batch (TD-MPC2's
    /// policy rollouts among the Gaussian samples) reads it in [`crate::Proposal::sample`].
    ///
    /// ```
    /// use mppi::rng::{BlockRng, sample_rng};
    /// assert_eq!(sample_rng(1, 2, 3, 40).sample_index(), 40);
    /// assert_eq!(BlockRng::new(1, 2, 3, 64, 8).lane(5).sample_index(), 69);
    /// ```
    #[must_use]
    pub fn sample_index(&self) -> u64 {
        self.index
    }

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

    /// This stream with the normal generator `normals` (the default is [`Normals::Exact`]).
    ///
    /// ```
    /// use mppi::rng::{Normals, sample_rng};
    /// let mut fast = sample_rng(7, 0, 0, 3).with_normals(Normals::Fast);
    /// let z = fast.normal();
    /// assert_eq!(z, f64::from(z as f32)); // a float32 value
    /// ```
    #[must_use]
    pub fn with_normals(mut self, normals: Normals) -> Self {
        self.normals = normals;
        self
    }

    /// The normal generator of this stream.
    #[must_use]
    pub fn normal_generator(&self) -> Normals {
        self.normals
    }

    /// A standard normal draw (ziggurat; see [`Normals`] for the two generators).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        match self.normals {
            Normals::Exact => self.normal_exact(),
            Normals::Fast => f64::from(self.normal_fast()),
        }
    }

    /// A standard normal draw from the `f64` ziggurat.
    #[inline]
    fn normal_exact(&mut self) -> f64 {
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

impl SampleRng {
    /// A standard normal from [`box_muller_f32`]: the first of the pair of a fresh draw, or
    /// the second one the previous call left.
    #[inline]
    fn normal_fast(&mut self) -> f32 {
        if let Some(z) = self.pending.take() {
            return f32::from_bits(z);
        }
        let (z0, z1) = box_muller_f32(self.next_bits());
        self.pending = Some(z1.to_bits());
        z0
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
        SampleRng {
            s,
            normals: Normals::Exact,
            pending: None,
            index: 0,
        }
    }
    /// SplitMix64 expansion of `state` into the four state words.
    fn seed_from_u64(state: u64) -> Self {
        SampleRng {
            s: expand_seed(state),
            normals: Normals::Exact,
            pending: None,
            index: 0,
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
    /// The sample index of lane 0.
    first: usize,
    s0: [u64; BLOCK_LANES],
    s1: [u64; BLOCK_LANES],
    s2: [u64; BLOCK_LANES],
    s3: [u64; BLOCK_LANES],
    /// The last draw of each lane.
    bits: [u64; BLOCK_LANES],
    normals: Normals,
    /// [`Normals::Fast`]: the second normal of each lane's last pair, and whether it is unused.
    pending: [f32; BLOCK_LANES],
    has_pending: [bool; BLOCK_LANES],
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
            first,
            s0: [0; BLOCK_LANES],
            s1: [0; BLOCK_LANES],
            s2: [0; BLOCK_LANES],
            s3: [0; BLOCK_LANES],
            bits: [0; BLOCK_LANES],
            normals: Normals::Exact,
            pending: [0.0; BLOCK_LANES],
            has_pending: [false; BLOCK_LANES],
        };
        let prefix = iteration_prefix(seed, step, iteration);
        for l in 0..lanes {
            let [a, b, c, d] = expand_seed(sample_seed(prefix, (first + l) as u64));
            (block.s0[l], block.s1[l], block.s2[l], block.s3[l]) = (a, b, c, d);
        }
        block
    }

    /// These streams with the normal generator `normals` (the default is [`Normals::Exact`]);
    /// lane `l` then equals [`sample_rng`]`(..).with_normals(normals)`.
    ///
    /// ```
    /// use mppi::rng::{BlockRng, Normals, sample_rng};
    /// let mut block = BlockRng::new(5, 1, 0, 64, 8).with_normals(Normals::Fast);
    /// let mut z = [0.0; 8];
    /// block.normal_rows(&mut z);
    /// let mut lane3 = sample_rng(5, 1, 0, 67).with_normals(Normals::Fast);
    /// assert_eq!(z[3], lane3.normal());
    /// ```
    #[must_use]
    pub fn with_normals(mut self, normals: Normals) -> Self {
        self.normals = normals;
        self
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
            normals: self.normals,
            pending: self.has_pending[l].then_some(self.pending[l].to_bits()),
            index: (self.first + l) as u64,
        }
    }

    /// Store `rng` back as lane `l` (after drawing from [`BlockRng::lane`]).
    pub fn set_lane(&mut self, l: usize, rng: &SampleRng) {
        [self.s0[l], self.s1[l], self.s2[l], self.s3[l]] = rng.s;
        self.has_pending[l] = rng.pending.is_some();
        self.pending[l] = f32::from_bits(rng.pending.unwrap_or(0));
    }

    /// One standard normal per lane into `out` (`out.len()` must equal [`BlockRng::lanes`]).
    #[inline]
    pub fn normals(&mut self, out: &mut [f64]) {
        match self.normals {
            Normals::Exact => self.normals_exact(out),
            Normals::Fast => self.normals_fast(out),
        }
    }

    /// [`BlockRng::normals`] for [`Normals::Fast`]: every other call steps the generators
    /// and returns the first normal of each lane's pair, keeping the second for the next call.
    fn normals_fast(&mut self, out: &mut [f64]) {
        let n = self.lanes;
        let out = &mut out[..n];
        let pending = self.has_pending[0];
        if self.has_pending[1..n].iter().any(|p| *p != pending) {
            // lanes drew different numbers of normals (through `lane`): one at a time
            for (l, o) in out.iter_mut().enumerate() {
                let mut rng = self.lane(l);
                *o = rng.normal();
                self.set_lane(l, &rng);
            }
            return;
        }
        if pending {
            for (o, z) in out.iter_mut().zip(&self.pending) {
                *o = f64::from(*z);
            }
        } else {
            self.step_all();
            for ((o, p), bits) in out.iter_mut().zip(&mut self.pending).zip(&self.bits) {
                let (z0, z1) = box_muller_f32(*bits);
                *o = f64::from(z0);
                *p = z1;
            }
        }
        self.has_pending[..n].fill(!pending);
    }

    /// One xoshiro step on every lane into `bits`.
    #[inline]
    fn step_all(&mut self) {
        for l in 0..self.lanes {
            self.bits[l] = xoshiro_step(
                &mut self.s0[l],
                &mut self.s1[l],
                &mut self.s2[l],
                &mut self.s3[l],
            );
        }
    }

    /// [`BlockRng::normals`] from the `f64` ziggurat.
    #[inline]
    fn normals_exact(&mut self, out: &mut [f64]) {
        let n = self.lanes;
        let out = &mut out[..n];
        let z = &*ZIGGURAT;
        // Fast path across lanes: generator step, layer lookup, inner-rectangle test.
        self.step_all();
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
        if self.normals == Normals::Fast {
            return self.normal_rows_fast(out);
        }
        for row in out.chunks_exact_mut(n) {
            self.normals(row);
        }
    }

    /// [`BlockRng::normal_rows`] for [`Normals::Fast`]: two rows per generator step.
    fn normal_rows_fast(&mut self, out: &mut [f64]) {
        let n = self.lanes;
        let mut rest = out;
        // a pending normal first (an odd number drawn before), and lanes out of step
        while self.has_pending[..n].iter().any(|p| *p) && rest.len() >= n {
            let (row, tail) = rest.split_at_mut(n);
            self.normals_fast(row);
            rest = tail;
        }
        let mut pairs = rest.chunks_exact_mut(2 * n);
        for pair in &mut pairs {
            let (a, b) = pair.split_at_mut(n);
            self.step_all();
            // split, transform and widen in separate passes so the transform runs on 32-bit
            // lanes only (8 per AVX2 vector instead of 4)
            let (mut lo, mut hi) = ([0u32; BLOCK_LANES], [0u32; BLOCK_LANES]);
            for ((l, h), bits) in lo.iter_mut().zip(&mut hi).zip(&self.bits) {
                (*l, *h) = (*bits as u32, (bits >> 32) as u32);
            }
            for (l, h) in lo.iter_mut().zip(&mut hi) {
                let (z0, z1) = box_muller_halves(*l, *h);
                (*l, *h) = (z0.to_bits(), z1.to_bits());
            }
            for ((za, zb), (l, h)) in a.iter_mut().zip(b.iter_mut()).zip(lo.iter().zip(&hi)) {
                *za = f64::from(f32::from_bits(*l));
                *zb = f64::from(f32::from_bits(*h));
            }
        }
        let last = pairs.into_remainder();
        if last.len() >= n {
            self.normals_fast(&mut last[..n]);
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

    /// Moments, tails and the CDF at fixed quantiles of `n` draws of `next`, each within 5
    /// standard errors of `N(0, 1)`'s (standard errors: `1/√n` for the mean, `√2/√n` for the
    /// second moment, `√96/√n` for the fourth, `√(p(1−p)/n)` for a probability).
    fn check_standard_normal(n: usize, mut next: impl FnMut() -> f64) {
        let quantiles = [
            (-3.090_232_306_167_813, 0.001),
            (-2.326_347_874_040_841, 0.01),
            (-1.281_551_565_544_6, 0.1),
            (-0.674_489_750_196_081_7, 0.25),
            (0.0, 0.5),
            (0.674_489_750_196_081_7, 0.75),
            (1.281_551_565_544_6, 0.9),
            (2.326_347_874_040_841, 0.99),
            (3.090_232_306_167_813, 0.999),
        ];
        let (mut m1, mut m2, mut m4) = (0.0, 0.0, 0.0);
        let (mut beyond3, mut beyond4) = (0usize, 0usize);
        let mut counts = [0usize; 9];
        for _ in 0..n {
            let z = next();
            assert!(z.is_finite());
            m1 += z;
            m2 += z * z;
            m4 += z * z * z * z;
            beyond3 += usize::from(z.abs() > 3.0);
            beyond4 += usize::from(z.abs() > 4.0);
            for (c, (q, _)) in counts.iter_mut().zip(&quantiles) {
                *c += usize::from(z <= *q);
            }
        }
        let nf = n as f64;
        let within = |est: f64, want: f64, se: f64, what: &str| {
            assert!(
                (est - want).abs() < 5.0 * se,
                "{what} = {est}, want {want} ± {}",
                5.0 * se
            );
        };
        within(m1 / nf, 0.0, 1.0 / nf.sqrt(), "mean");
        within(m2 / nf, 1.0, 2f64.sqrt() / nf.sqrt(), "E z²");
        within(m4 / nf, 3.0, 96f64.sqrt() / nf.sqrt(), "E z⁴");
        let prob = |count: usize, p: f64, what: &str| {
            within(count as f64 / nf, p, (p * (1.0 - p) / nf).sqrt(), what);
        };
        prob(beyond3, 0.002_699_796, "P(|z| > 3)");
        prob(beyond4, 6.334_248e-5, "P(|z| > 4)");
        for (c, (q, p)) in counts.iter().zip(&quantiles) {
            prob(*c, *p, &format!("P(z <= {q})"));
        }
    }

    #[test]
    fn exact_normals_are_standard_normal() {
        let mut rng = sample_rng(1, 2, 3, 4);
        check_standard_normal(4_000_000, || rng.normal());
    }

    #[test]
    fn fast_normals_are_standard_normal() {
        let mut rng = sample_rng(1, 2, 3, 4).with_normals(Normals::Fast);
        check_standard_normal(4_000_000, || rng.normal());
        // through the block path too, every lane
        let mut block = BlockRng::new(3, 1, 0, 0, BLOCK_LANES).with_normals(Normals::Fast);
        let mut rows = vec![0.0; 64 * BLOCK_LANES];
        let mut buffered = Vec::new();
        check_standard_normal(2_000_000, || {
            if buffered.is_empty() {
                block.normal_rows(&mut rows);
                buffered.extend_from_slice(&rows);
            }
            buffered.pop().expect("refilled")
        });
    }

    #[test]
    fn fast_normal_pairs_are_independent() {
        // the two normals of one draw: E[z₀ z₁] = 0 and E[z₀² z₁²] = 1 (standard errors 1/√n
        // and √8/√n; z₀² z₁² has variance 3·3 − 1 = 8)
        let mut rng = sample_rng(5, 0, 0, 0).with_normals(Normals::Fast);
        let n = 1_000_000;
        let (mut c11, mut c22) = (0.0, 0.0);
        for _ in 0..n {
            let (a, b) = (rng.normal(), rng.normal());
            c11 += a * b;
            c22 += a * a * b * b;
        }
        let nf = n as f64;
        assert!((c11 / nf).abs() < 5.0 / nf.sqrt(), "E z0 z1 = {}", c11 / nf);
        assert!(
            (c22 / nf - 1.0).abs() < 5.0 * 8f64.sqrt() / nf.sqrt(),
            "E z0² z1² = {}",
            c22 / nf
        );
    }

    #[test]
    fn fast_normal_functions_are_accurate() {
        // ln in f32 against f64 over (0, 1] and beyond, to 2 ulp of f32
        let mut x = 1e-30f32;
        while x < 1e30 {
            let want = f64::from(x).ln();
            let got = f64::from(ln_f32(x));
            assert!(
                (got - want).abs() <= 2.4e-7 * want.abs().max(1.0),
                "ln({x}) = {got}, want {want}"
            );
            x *= 1.000_37;
        }
        // a pair is (r cos θ, r sin θ): check it against f64 on random draws
        let mut rng = sample_rng(8, 0, 0, 0);
        for _ in 0..200_000 {
            let bits = rng.next_bits();
            let (z0, z1) = box_muller_f32(bits);
            let (lo, hi) = (bits as u32, (bits >> 32) as u32);
            let u = (f64::from(lo >> 9) + 0.5) / f64::from(1u32 << 23);
            let r = (-2.0 * u.ln()).sqrt();
            let quarter = f64::from(hi & 3) * std::f64::consts::FRAC_PI_2;
            let a = std::f64::consts::FRAC_PI_4 * f64::from(signed_unit_f32(hi));
            let (s, c) = (a + quarter).sin_cos();
            assert!(
                (f64::from(z0) - r * c).abs() < 4e-7 * r.max(1.0),
                "{z0} vs {}",
                r * c
            );
            assert!(
                (f64::from(z1) - r * s).abs() < 4e-7 * r.max(1.0),
                "{z1} vs {}",
                r * s
            );
        }
    }

    #[test]
    fn fast_block_lanes_match_scalar_streams() {
        // odd and even row counts, single rows between them, and a lane drawn on its own so
        // that lanes fall out of step: every lane still equals its scalar stream
        for lanes in [1, 7, BLOCK_LANES] {
            let mut block = BlockRng::new(42, 3, 1, 96, lanes).with_normals(Normals::Fast);
            let mut scalars: Vec<SampleRng> = (0..lanes)
                .map(|l| sample_rng(42, 3, 1, 96 + l as u64).with_normals(Normals::Fast))
                .collect();
            for (round, rows) in [3usize, 1, 4, 2, 5, 1, 1, 6].into_iter().enumerate() {
                let mut out = vec![0.0; rows * lanes];
                if rows == 1 {
                    block.normals(&mut out);
                } else {
                    block.normal_rows(&mut out);
                }
                for r in 0..rows {
                    for (l, rng) in scalars.iter_mut().enumerate() {
                        assert_eq!(out[r * lanes + l].to_bits(), rng.normal().to_bits());
                    }
                }
                if round == 2 {
                    let mut lane = block.lane(0);
                    assert_eq!(lane.normal().to_bits(), scalars[0].normal().to_bits());
                    block.set_lane(0, &lane);
                }
            }
            for (l, r) in scalars.iter().enumerate() {
                assert_eq!(&block.lane(l), r);
            }
        }
    }
}
