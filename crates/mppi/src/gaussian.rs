//! Gaussian exploration noise with a fixed covariance (classic MPPI, docs/theory.md §B.4.1).
//!
//! Each time step's perturbation is `ε_t = L z_t`, `z_t ~ N(0, I_m)`, with `L Lᵀ = Σ` the
//! Cholesky factor of the per-step covariance. The M-step for the mean,
//! `μ⁺ = Σ_i w_i U_i = μ + Σ_i w_i ε_i`, does not depend on `Σ`'s structure; only sampling does.

use nalgebra::DMatrix;

use crate::error::MppiError;
use crate::rng::{BlockRng, SampleRng};

/// Fixed-covariance Gaussian noise for `m`-dimensional controls.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianNoise {
    m: usize,
    /// Row-major lower Cholesky factor of the per-step covariance.
    chol: Vec<f64>,
    /// Row-major inverse covariance (for the control-cost term).
    precision: Vec<f64>,
    diagonal: bool,
}

impl GaussianNoise {
    /// Build from a row-major symmetric positive-definite `m x m` covariance.
    ///
    /// ```
    /// use mppi::gaussian::GaussianNoise;
    /// let g = GaussianNoise::new(2, &[4.0, 0.0, 0.0, 1.0]).unwrap();
    /// assert_eq!(g.precision(), &[0.25, 0.0, 0.0, 1.0]);
    /// assert!(GaussianNoise::new(2, &[1.0, 2.0, 2.0, 1.0]).is_err()); // not positive definite
    /// ```
    pub fn new(m: usize, covariance: &[f64]) -> Result<Self, MppiError> {
        if covariance.len() != m * m {
            return Err(MppiError::DimensionMismatch {
                what: "noise covariance",
                expected: m * m,
                got: covariance.len(),
            });
        }
        let cov = DMatrix::from_row_slice(m, m, covariance);
        let chol = cov.clone().cholesky().ok_or_else(|| {
            MppiError::config(
                "proposal.noise_covariance",
                "is not positive definite (Cholesky failed)",
            )
        })?;
        let l = chol.l();
        let inv = chol.inverse();
        let mut lower = vec![0.0; m * m];
        let mut precision = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                lower[i * m + j] = l[(i, j)];
                precision[i * m + j] = inv[(i, j)];
            }
        }
        let diagonal = (0..m).all(|i| (0..m).all(|j| i == j || covariance[i * m + j] == 0.0));
        if diagonal {
            // exact inverse of a diagonal matrix, so identities hold to the last bit
            for i in 0..m {
                precision[i * m + i] = 1.0 / covariance[i * m + i];
                lower[i * m + i] = covariance[i * m + i].sqrt();
            }
        }
        Ok(GaussianNoise {
            m,
            chol: lower,
            precision,
            diagonal,
        })
    }

    /// Control dimension `m`.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.m
    }
    /// Row-major lower Cholesky factor `L` of the per-step covariance.
    #[must_use]
    pub fn cholesky(&self) -> &[f64] {
        &self.chol
    }
    /// True if `Σ` is diagonal (then `L` is the diagonal of standard deviations).
    #[must_use]
    pub fn is_diagonal(&self) -> bool {
        self.diagonal
    }
    /// Row-major inverse covariance `Σ⁻¹`.
    #[must_use]
    pub fn precision(&self) -> &[f64] {
        &self.precision
    }

    /// Fill `eps` (a whole sequence, `T·m` entries) with `N(0, Σ)` perturbations per step.
    pub fn fill(&self, rng: &mut SampleRng, eps: &mut [f64]) {
        for z in eps.iter_mut() {
            *z = rng.normal();
        }
        for step in eps.chunks_exact_mut(self.m) {
            self.correlate(step, 1);
        }
    }

    /// [`GaussianNoise::fill`] for every lane of `rng` at once, in structure-of-arrays layout
    /// (`eps[i * lanes + l]`, `T·m·lanes` entries): lane `l` gets exactly the sequence
    /// [`GaussianNoise::fill`] draws from [`BlockRng::lane`]`(l)`.
    pub fn fill_block(&self, rng: &mut BlockRng, eps: &mut [f64]) {
        let lanes = rng.lanes();
        rng.normal_rows(eps);
        for step in eps.chunks_exact_mut(self.m * lanes) {
            self.correlate(step, lanes);
        }
    }

    /// `ε = L z` in place for one time step of `lanes` interleaved vectors (`z[j * lanes + l]`).
    /// Row `i` only needs `z_0..z_i`, so rows are done from the last one up; each sum runs in
    /// the same order for any `lanes`, so the scalar and block paths agree bit for bit.
    #[inline]
    fn correlate(&self, step: &mut [f64], lanes: usize) {
        let m = self.m;
        if self.diagonal {
            for (z, j) in step.chunks_exact_mut(lanes).zip(0..m) {
                let s = self.chol[j * m + j];
                for v in z {
                    *v *= s;
                }
            }
            return;
        }
        for i in (0..m).rev() {
            for l in 0..lanes {
                let mut acc = self.chol[i * m] * step[l];
                for k in 1..=i {
                    acc += self.chol[i * m + k] * step[k * lanes + l];
                }
                step[i * lanes + l] = acc;
            }
        }
    }

    /// `Σ_t u_tᵀ Σ⁻¹ ε_t` for a plan `u` and a perturbation `eps` (both `T·m`).
    #[must_use]
    pub fn control_cost(&self, u: &[f64], eps: &[f64]) -> f64 {
        let m = self.m;
        let mut total = 0.0;
        for (ut, et) in u.chunks_exact(m).zip(eps.chunks_exact(m)) {
            for i in 0..m {
                let row = &self.precision[i * m..(i + 1) * m];
                let pe: f64 = row.iter().zip(et).map(|(a, b)| a * b).sum();
                total += ut[i] * pe;
            }
        }
        total
    }
}
