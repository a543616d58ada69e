//! Closed-form EM-MPPI theory for a Gaussian sampling distribution and a quadratic cost.
//!
//! Setting (docs/theory.md §C.3): samples `U ~ N(μ, Σ)` over `R^d` (`Σ` symmetric positive
//! definite, fixed), a quadratic cost
//!
//! ```text
//! J(U) = J* + ½ (U − u*)ᵀ H (U − u*)            (H symmetric)
//! ```
//!
//! and a temperature `λ > 0`. Write `P = H/λ` and `e = μ − u*`. Everything is Gaussian, so the
//! E-step (the tilted posterior `q(U) ∝ N(U; μ, Σ) e^{−J(U)/λ}`) and all the quantities the
//! theory talks about have closed forms:
//!
//! | quantity | formula | function |
//! | --- | --- | --- |
//! | posterior covariance | `Σ_post = (Σ⁻¹ + H/λ)⁻¹` | [`posterior_covariance`] |
//! | EM map matrix | `A = (I + ΣH/λ)⁻¹ = Σ_post Σ⁻¹` | [`em_map_matrix`] |
//! | exact EM step | `μ⁺ = E_q[U] = Σ_post (Σ⁻¹μ + H u*/λ)` | [`exact_em_step`] |
//! | log-likelihood | `L(μ) = log E_{N(μ,Σ)}[e^{−J/λ}]` | [`log_likelihood`] |
//! | score | `∇L(μ) = Σ⁻¹ (E_q[U] − μ)` | [`score`] |
//! | natural gradient | `Σ ∇L(μ) = μ⁺ − μ` | [`natural_gradient`] |
//! | local (here global) rate | `ρ = ρ(A) = 1/(1 + ν_min/λ)` | [`contraction_rate`], [`slowest_mode`] |
//! | expected `ESS/N` | `E[w]²/E[w²]` (C.4 item 4) | [`expected_ess_fraction`] |
//! | bias and SD of one batch's `ESS/N` | delta method with `E[w^k] = e^{L(μ; λ/k)}` | [`ess_fraction_delta`] |
//!
//! `H` need not be positive definite: every function only needs the posterior to exist,
//! i.e. `Σ⁻¹ + H/λ ≻ 0` (equivalently `I + Σ^{1/2} H Σ^{1/2}/λ ≻ 0`); otherwise it returns
//! [`TheoryError::NotPositiveDefinite`].
//!
//! Numerics: with the Cholesky factor `Σ = L Lᵀ` and the symmetric positive-definite
//! `B = I + Lᵀ P L`, every quantity is written with `L` and `B` only (no explicit `Σ⁻¹`, no
//! inverse of `H`): `Σ_post = L B⁻¹ Lᵀ`, `A = L B⁻¹ L⁻¹`, `det(I + ΣH/λ) = det B`.
//!
//! Matrices are [`nalgebra::DMatrix`], vectors [`nalgebra::DVector`]. Bad dimensions,
//! non-symmetric or non-positive-definite matrices and a bad `λ` are returned as
//! [`TheoryError`]s; nothing here panics on user data.
//!
//! ```
//! use mppi_theory::closed_form::{self as theory, DMatrix, DVector, Quadratic};
//!
//! // 1-D: Σ = σ² = 0.5, H = 2, λ = 1  =>  A = 1/(1 + σ² H/λ) = 0.5
//! let sigma = DMatrix::from_element(1, 1, 0.5);
//! let quad = Quadratic::new(DMatrix::from_element(1, 1, 2.0), DVector::from_element(1, 1.0), 0.0)?;
//! let rho = theory::contraction_rate(&sigma, &quad.h, 1.0)?;
//! assert!((rho - 0.5).abs() < 1e-15);
//!
//! // one exact EM step halves the distance to u* = 1 and increases L
//! let mu = DVector::from_element(1, 3.0);
//! let next = theory::exact_em_step(&mu, &sigma, &quad, 1.0)?;
//! assert!((next[0] - 2.0).abs() < 1e-14);
//! assert!(theory::log_likelihood(&next, &sigma, &quad, 1.0)?
//!     > theory::log_likelihood(&mu, &sigma, &quad, 1.0)?);
//! # Ok::<(), theory::TheoryError>(())
//! ```

use nalgebra::{Cholesky, Dyn};
use thiserror::Error;

/// Re-exported so that callers need no direct `nalgebra` dependency.
pub use nalgebra::{DMatrix, DVector};

/// A `DMatrix` from rows (e.g. a TOML array of arrays); every row must have the same length.
///
/// ```
/// use mppi_theory::closed_form::matrix_from_rows;
/// let m = matrix_from_rows(&[vec![1.0, 2.0], vec![3.0, 4.0]])?;
/// assert_eq!(m[(1, 0)], 3.0);
/// assert!(matrix_from_rows(&[vec![1.0, 2.0], vec![3.0]]).is_err());
/// # Ok::<(), mppi_theory::closed_form::TheoryError>(())
/// ```
pub fn matrix_from_rows(rows: &[Vec<f64>]) -> Result<DMatrix<f64>, TheoryError> {
    let cols = rows.first().map_or(0, Vec::len);
    for r in rows {
        check_len("matrix row", cols, r.len())?;
    }
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    Ok(DMatrix::from_row_slice(rows.len(), cols, &flat))
}

/// What can go wrong in a closed-form computation.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum TheoryError {
    /// A vector or matrix does not have the dimension of the problem.
    #[error("dimension mismatch for {what}: expected {expected}, got {got}")]
    DimensionMismatch {
        /// Which argument.
        what: &'static str,
        /// The dimension implied by the other arguments.
        expected: usize,
        /// The dimension that was passed.
        got: usize,
    },
    /// A matrix that must be square is not.
    #[error("{what} must be square, got {rows} x {cols}")]
    NotSquare {
        /// Which argument.
        what: &'static str,
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// A matrix that must be symmetric is not (beyond a relative tolerance of `1e-10`).
    #[error("{what} is not symmetric: entry ({row},{col}) = {upper} but ({col},{row}) = {lower}")]
    NotSymmetric {
        /// Which argument.
        what: &'static str,
        /// Row of the offending entry.
        row: usize,
        /// Column of the offending entry.
        col: usize,
        /// The entry `(row, col)`.
        upper: f64,
        /// The entry `(col, row)`.
        lower: f64,
    },
    /// A matrix that must be positive definite is not (its Cholesky factorization failed).
    #[error("{what} is not positive definite")]
    NotPositiveDefinite {
        /// Which matrix (an argument, or the posterior precision `Σ⁻¹ + H/λ`).
        what: &'static str,
    },
    /// An argument contains NaN or an infinity.
    #[error("{what} has a non-finite entry")]
    NonFinite {
        /// Which argument.
        what: &'static str,
    },
    /// The temperature is not a finite number `> 0`.
    #[error("lambda must be a finite number > 0, got {0}")]
    InvalidLambda(f64),
}

/// The quadratic cost `J(U) = J* + ½ (U − u*)ᵀ H (U − u*)` over `R^d`.
///
/// `H` must be symmetric (it need not be positive definite; see the [module docs](self)).
/// The fields are public for convenience; every function of this module re-validates them.
///
/// ```
/// use mppi_theory::closed_form::{DMatrix, DVector, Quadratic};
/// let q = Quadratic::new(DMatrix::identity(2, 2) * 2.0, DVector::from_vec(vec![1.0, 0.0]), 0.5)?;
/// assert_eq!(q.cost(&[1.0, 0.0]), 0.5);
/// assert_eq!(q.cost(&[2.0, 1.0]), 0.5 + 2.0);
/// assert!(q.cost(&[1.0]).is_nan()); // wrong length: NaN (use `try_cost` for an error)
/// # Ok::<(), mppi_theory::closed_form::TheoryError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Quadratic {
    /// The symmetric `d x d` Hessian `H`.
    pub h: DMatrix<f64>,
    /// The stationary point `u*` (the minimizer when `H ≻ 0`).
    pub u_star: DVector<f64>,
    /// The value `J* = J(u*)`.
    pub j_star: f64,
}

impl Quadratic {
    /// Build and validate: `h` square, symmetric and finite, `u_star` of matching length,
    /// `j_star` finite.
    pub fn new(h: DMatrix<f64>, u_star: DVector<f64>, j_star: f64) -> Result<Self, TheoryError> {
        let q = Quadratic { h, u_star, j_star };
        q.validate()?;
        Ok(q)
    }

    /// Check the invariants listed in [`Quadratic::new`].
    pub fn validate(&self) -> Result<(), TheoryError> {
        let d = check_square_symmetric("H", &self.h)?;
        check_vec("u_star", d, &self.u_star)?;
        if !self.j_star.is_finite() {
            return Err(TheoryError::NonFinite { what: "j_star" });
        }
        Ok(())
    }

    /// Decision dimension `d`.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.u_star.len()
    }

    /// `J(u) = J* + ½ (u − u*)ᵀ H (u − u*)`; `NaN` if `u.len() != d`.
    ///
    /// Returning `NaN` (rather than an error) lets the method be used directly as a black-box
    /// objective ([`mppi::FnObjective`]), where a non-finite cost simply gets zero weight.
    /// Allocation free, `O(d²)`.
    #[must_use]
    pub fn cost(&self, u: &[f64]) -> f64 {
        let d = self.dim();
        if u.len() != d || self.h.nrows() != d || self.h.ncols() != d {
            return f64::NAN;
        }
        let mut quad = 0.0;
        for j in 0..d {
            let ej = u[j] - self.u_star[j];
            let mut col = 0.0;
            for i in 0..d {
                col += self.h[(i, j)] * (u[i] - self.u_star[i]);
            }
            quad += ej * col;
        }
        self.j_star + 0.5 * quad
    }

    /// [`Quadratic::cost`] with a typed error for a wrong length.
    pub fn try_cost(&self, u: &[f64]) -> Result<f64, TheoryError> {
        check_len("u", self.dim(), u.len())?;
        self.validate()?;
        Ok(self.cost(u))
    }
}

/// `Σ_post = (Σ⁻¹ + H/λ)⁻¹`: the covariance of the tilted posterior
/// `q(U) ∝ N(U; μ, Σ) e^{−J(U)/λ}` for the quadratic `J` with Hessian `h`.
///
/// It does not depend on `μ` or `u*`. Computed as `L B⁻¹ Lᵀ` with `Σ = L Lᵀ`,
/// `B = I + Lᵀ H L/λ`, and symmetrized.
///
/// Errors: `sigma`/`h` not square, symmetric, finite or of the same size; `Σ` or the
/// posterior precision not positive definite; `λ` not finite and positive.
pub fn posterior_covariance(
    sigma: &DMatrix<f64>,
    h: &DMatrix<f64>,
    lambda: f64,
) -> Result<DMatrix<f64>, TheoryError> {
    let t = Tilt::new(sigma, h, lambda)?;
    let x = t.b_chol.solve(&t.l.transpose()); // B⁻¹ Lᵀ
    let post = &t.l * x;
    Ok(symmetrize(&post))
}

/// `A = (I + ΣH/λ)⁻¹ = Σ_post Σ⁻¹`: the matrix of the exact fixed-`Σ` EM map on a quadratic,
/// `μ_{k+1} − u* = A (μ_k − u*)` (docs/theory.md §C.3).
///
/// `A` is similar to the symmetric `B⁻¹` (`A = L B⁻¹ L⁻¹`), so its eigenvalues are real and
/// equal `1/(1 + ν_i/λ)` with `ν_i` the eigenvalues of `Σ^{1/2} H Σ^{1/2}`.
///
/// Errors as for [`posterior_covariance`].
pub fn em_map_matrix(
    sigma: &DMatrix<f64>,
    h: &DMatrix<f64>,
    lambda: f64,
) -> Result<DMatrix<f64>, TheoryError> {
    let t = Tilt::new(sigma, h, lambda)?;
    let d = t.l.nrows();
    let l_inv =
        t.l.solve_lower_triangular(&DMatrix::identity(d, d))
            .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?;
    Ok(&t.l * t.b_chol.solve(&l_inv))
}

/// One exact EM step (population E-step by Gaussian integration, then the fixed-`Σ` M-step):
///
/// ```text
/// μ⁺ = E_q[U] = Σ_post (Σ⁻¹ μ + H u*/λ)  =  μ − Σ_post (H/λ)(μ − u*)
/// ```
///
/// (the two forms are algebraically identical; the second is what is computed, without
/// `Σ⁻¹`). Equivalently `μ⁺ − u* = A (μ − u*)` with `A` from [`em_map_matrix`], and
/// `μ⁺ − μ = Σ ∇L(μ)` (MPPI = natural gradient with unit step, docs/theory.md §D.1).
///
/// Errors as for [`posterior_covariance`], plus a wrong length of `mu`.
pub fn exact_em_step(
    mu: &DVector<f64>,
    sigma: &DMatrix<f64>,
    quad: &Quadratic,
    lambda: f64,
) -> Result<DVector<f64>, TheoryError> {
    Ok(mu + natural_gradient(mu, sigma, quad, lambda)?)
}

/// The closed-form log-likelihood (negative free energy over `λ`), docs/theory.md §C.3:
///
/// ```text
/// L(μ) = log E_{U~N(μ,Σ)}[e^{−J(U)/λ}]
///      = −J*/λ − ½ log det(I + ΣH/λ) − ½ eᵀ (λI + HΣ)⁻¹ H e,     e = μ − u*.
/// ```
///
/// Computed as `−J*/λ − ½ log det B − ½ (LᵀPe)ᵀ B⁻¹ (L⁻¹e)` with `P = H/λ`, which is the
/// same quantity without inverting `H` (valid for singular or indefinite `H` as long as the
/// posterior exists).
///
/// Errors as for [`exact_em_step`].
pub fn log_likelihood(
    mu: &DVector<f64>,
    sigma: &DMatrix<f64>,
    quad: &Quadratic,
    lambda: f64,
) -> Result<f64, TheoryError> {
    let t = Tilt::for_quadratic(sigma, quad, lambda)?;
    let e = t.offset(mu, quad)?;
    let f =
        t.l.solve_lower_triangular(&e)
            .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?; // L⁻¹ e
    let g = t.l.transpose() * (&t.p * &e); // Lᵀ P e = K L⁻¹ e
    let quad_form = g.dot(&t.b_chol.solve(&f)); // eᵀ (Σ + P⁻¹)⁻¹ e
    let log_det_b = 2.0 * t.b_chol.l_dirty().diagonal().map(f64::ln).sum();
    Ok(-quad.j_star / lambda - 0.5 * log_det_b - 0.5 * quad_form)
}

/// The score `∇_μ L(μ) = Σ⁻¹ (E_q[U] − μ) = −(Σ + λH⁻¹)⁻¹ (μ − u*)` (docs/theory.md §D.1; the
/// second form for invertible `H`). Computed as `−L⁻ᵀ B⁻¹ Lᵀ (H/λ) e`.
///
/// Its Monte-Carlo estimate from one planner iteration is `Σ⁻¹ Σ_i w_i ε_i`.
///
/// Errors as for [`exact_em_step`].
pub fn score(
    mu: &DVector<f64>,
    sigma: &DMatrix<f64>,
    quad: &Quadratic,
    lambda: f64,
) -> Result<DVector<f64>, TheoryError> {
    let t = Tilt::for_quadratic(sigma, quad, lambda)?;
    let e = t.offset(mu, quad)?;
    let g = t.l.transpose() * (&t.p * &e);
    let s = t.b_chol.solve(&g);
    let lt = t.l.transpose();
    let grad = lt
        .solve_upper_triangular(&s)
        .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?;
    Ok(-grad)
}

/// The natural gradient `Σ ∇L(μ) = −Σ_post (H/λ)(μ − u*) = μ⁺ − μ`: the exact EM / MPPI
/// displacement (Fisher information of the mean is `Σ⁻¹`). A step of size `α` is
/// `μ_α = μ + α Σ ∇L(μ)`, and for `α ∈ (0, 2)`
/// `L(μ_α) − L(μ) ≥ α(1 − α/2) ∇Lᵀ Σ ∇L` (docs/theory.md §C.2 item 4).
///
/// Errors as for [`exact_em_step`].
pub fn natural_gradient(
    mu: &DVector<f64>,
    sigma: &DMatrix<f64>,
    quad: &Quadratic,
    lambda: f64,
) -> Result<DVector<f64>, TheoryError> {
    let t = Tilt::for_quadratic(sigma, quad, lambda)?;
    let e = t.offset(mu, quad)?;
    let g = t.l.transpose() * (&t.p * &e);
    Ok(-(&t.l * t.b_chol.solve(&g)))
}

/// The contraction rate of exact fixed-`Σ` EM on the quadratic: the spectral radius
///
/// ```text
/// ρ = ρ((I + ΣH/λ)⁻¹) = 1 / (1 + ν_min/λ),   ν_min = λ_min(Σ^{1/2} H Σ^{1/2}),
/// ```
///
/// so `‖μ_k − u*‖` shrinks like `ρ^k` (docs/theory.md §C.3). `ρ < 1` iff `H ≻ 0`; for indefinite
/// `H` (with the posterior still defined) `ρ > 1`: the stationary point repels.
///
/// Errors as for [`posterior_covariance`].
pub fn contraction_rate(
    sigma: &DMatrix<f64>,
    h: &DMatrix<f64>,
    lambda: f64,
) -> Result<f64, TheoryError> {
    Ok(slowest_mode(sigma, h, lambda)?.rate)
}

/// The slowest mode of the EM map: its largest eigenvalue and the eigenvector.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowMode {
    /// The largest eigenvalue `ρ` of `A = (I + ΣH/λ)⁻¹` (equal to its spectral radius).
    pub rate: f64,
    /// A unit-norm (Euclidean) eigenvector `v`, `A v = ρ v`, signed so that its entry of
    /// largest magnitude is positive.
    pub direction: DVector<f64>,
}

/// The eigenpair of `A = (I + ΣH/λ)⁻¹` with the largest eigenvalue (docs/theory.md §C.4 item 3).
///
/// With `B = I + Lᵀ H L/λ = Y diag(β) Yᵀ`, `A = L B⁻¹ L⁻¹` has eigenvalues `1/β_i` and
/// eigenvectors `L y_i`; the slowest mode belongs to `β_min`.
///
/// Errors as for [`posterior_covariance`].
pub fn slowest_mode(
    sigma: &DMatrix<f64>,
    h: &DMatrix<f64>,
    lambda: f64,
) -> Result<SlowMode, TheoryError> {
    let t = Tilt::new(sigma, h, lambda)?;
    let eig = t.b.clone().symmetric_eigen();
    let (imin, beta_min) =
        eig.eigenvalues
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |acc, (i, b)| {
                    if b < acc.1 { (i, b) } else { acc }
                },
            );
    let y = eig.eigenvectors.column(imin).into_owned();
    let mut v = &t.l * y;
    let norm = v.norm();
    v /= norm;
    let imax = v.iamax();
    if v[imax] < 0.0 {
        v = -v;
    }
    Ok(SlowMode {
        rate: 1.0 / beta_min,
        direction: v,
    })
}

/// The large-`N` limit of `ESS/N` for the weights `w ∝ e^{−J/λ}` of samples from `N(μ, Σ)`
/// (docs/theory.md §C.4 item 4):
///
/// ```text
/// ESS/N → E[w]² / E[w²] = Π_i [ (1+a_i)/√(1+2a_i) · exp( b_i² / ((1+2a_i)(1+a_i)) ) ]⁻¹
/// ```
///
/// with `Σ = S Sᵀ` (here `S = L`, Cholesky), `SᵀHS/λ = V diag(a) Vᵀ` and
/// `b = Vᵀ Sᵀ H (μ − u*)/λ`. The value is in `(0, 1]` and equals 1 only when `H = 0`. If some
/// `1 + 2a_i ≤ 0` the second moment `E[w²]` is infinite and the result is `0`.
///
/// Errors as for [`exact_em_step`].
pub fn expected_ess_fraction(
    mu: &DVector<f64>,
    sigma: &DMatrix<f64>,
    quad: &Quadratic,
    lambda: f64,
) -> Result<f64, TheoryError> {
    let t = Tilt::for_quadratic(sigma, quad, lambda)?;
    let e = t.offset(mu, quad)?;
    let k = symmetrize(&(t.l.transpose() * &t.p * &t.l));
    let eig = k.symmetric_eigen();
    let b = eig.eigenvectors.transpose() * (t.l.transpose() * (&t.p * &e));
    let mut log_ratio = 0.0; // log(E[w²]/E[w]²)
    for (&a, &bi) in eig.eigenvalues.iter().zip(b.iter()) {
        let (p1, p2) = (1.0 + a, 1.0 + 2.0 * a);
        if p2 <= 0.0 {
            return Ok(0.0);
        }
        log_ratio += p1.ln() - 0.5 * p2.ln() + bi * bi / (p2 * p1);
    }
    Ok((-log_ratio).exp())
}

/// The delta-method bias and standard deviation of one batch's `ESS/N = (Σw)²/(N Σw²)` for `n`
/// samples from `N(μ, Σ)`, `w = e^{−J/λ}`: `(E[ESS/N] − E[w]²/E[w²], SD[ESS/N])` to order `1/n`.
///
/// The normalized weight moments are closed-form on the quadratic, since
/// `E[e^{−kJ/λ}] = e^{L(μ; λ/k)}`: `m_k = E[w^k]/E[w]^k = exp(L(λ/k) − k L(λ))`. With
/// `f(a, b) = a²/b` at `(a, b) = (1, m₂)`, `Var a = m₂ − 1`, `Cov(a, b) = m₃ − m₂`,
/// `Var b = m₄ − m₂²`:
///
/// ```text
/// bias ≈ (1/n) [Var a/m₂ − 2 Cov(a,b)/m₂² + Var b/m₂³]
/// Var  ≈ (1/n) [4 Var a/m₂² − 4 Cov(a,b)/m₂³ + Var b/m₂⁴]
/// ```
///
/// Errors as for [`log_likelihood`] (at `λ/4` too: the fourth moment must be finite).
pub fn ess_fraction_delta(
    mu: &DVector<f64>,
    sigma: &DMatrix<f64>,
    quad: &Quadratic,
    lambda: f64,
    n: usize,
) -> Result<(f64, f64), TheoryError> {
    let l1 = log_likelihood(mu, sigma, quad, lambda)?;
    let m = |k: f64| -> Result<f64, TheoryError> {
        Ok((log_likelihood(mu, sigma, quad, lambda / k)? - k * l1).exp())
    };
    let (m2, m3, m4) = (m(2.0)?, m(3.0)?, m(4.0)?);
    let (va, cab, vb) = (m2 - 1.0, m3 - m2, m4 - m2 * m2);
    let n = n as f64;
    let bias = (va / m2 - 2.0 * cab / (m2 * m2) + vb / m2.powi(3)) / n;
    let var = (4.0 * va / (m2 * m2) - 4.0 * cab / m2.powi(3) + vb / m2.powi(4)) / n;
    Ok((bias, var.max(0.0).sqrt()))
}

/// Validated pieces shared by every computation: `Σ = L Lᵀ`, `P = H/λ`, `B = I + LᵀPL` and
/// its Cholesky factorization.
struct Tilt {
    l: DMatrix<f64>,
    p: DMatrix<f64>,
    b: DMatrix<f64>,
    b_chol: Cholesky<f64, Dyn>,
}

impl Tilt {
    fn new(sigma: &DMatrix<f64>, h: &DMatrix<f64>, lambda: f64) -> Result<Self, TheoryError> {
        if !(lambda.is_finite() && lambda > 0.0) {
            return Err(TheoryError::InvalidLambda(lambda));
        }
        let d = check_square_symmetric("Sigma", sigma)?;
        let dh = check_square_symmetric("H", h)?;
        check_len("H", d, dh)?;
        let l = symmetrize(sigma)
            .cholesky()
            .ok_or(TheoryError::NotPositiveDefinite { what: "Sigma" })?
            .unpack();
        let p = symmetrize(h) / lambda;
        let b = symmetrize(&(DMatrix::identity(d, d) + l.transpose() * &p * &l));
        let b_chol = b
            .clone()
            .cholesky()
            .ok_or(TheoryError::NotPositiveDefinite {
                what: "posterior precision Sigma^-1 + H/lambda",
            })?;
        Ok(Tilt { l, p, b, b_chol })
    }

    fn for_quadratic(
        sigma: &DMatrix<f64>,
        quad: &Quadratic,
        lambda: f64,
    ) -> Result<Self, TheoryError> {
        quad.validate()?;
        Tilt::new(sigma, &quad.h, lambda)
    }

    /// `e = μ − u*`, checking `μ`.
    fn offset(&self, mu: &DVector<f64>, quad: &Quadratic) -> Result<DVector<f64>, TheoryError> {
        check_vec("mu", self.l.nrows(), mu)?;
        Ok(mu - &quad.u_star)
    }
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), TheoryError> {
    if expected == got {
        Ok(())
    } else {
        Err(TheoryError::DimensionMismatch {
            what,
            expected,
            got,
        })
    }
}

fn check_vec(what: &'static str, d: usize, v: &DVector<f64>) -> Result<(), TheoryError> {
    check_len(what, d, v.len())?;
    if v.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(TheoryError::NonFinite { what })
    }
}

/// Square, finite and symmetric to `|a_ij − a_ji| ≤ 1e-10 · max|a|`; returns the size.
fn check_square_symmetric(what: &'static str, m: &DMatrix<f64>) -> Result<usize, TheoryError> {
    let (rows, cols) = m.shape();
    if rows != cols {
        return Err(TheoryError::NotSquare { what, rows, cols });
    }
    if rows == 0 {
        return Err(TheoryError::DimensionMismatch {
            what,
            expected: 1,
            got: 0,
        });
    }
    if m.iter().any(|x| !x.is_finite()) {
        return Err(TheoryError::NonFinite { what });
    }
    let scale = m.amax();
    for i in 0..rows {
        for j in 0..i {
            let (upper, lower) = (m[(j, i)], m[(i, j)]);
            if (upper - lower).abs() > 1e-10 * scale {
                return Err(TheoryError::NotSymmetric {
                    what,
                    row: j,
                    col: i,
                    upper,
                    lower,
                });
            }
        }
    }
    Ok(rows)
}

fn symmetrize(m: &DMatrix<f64>) -> DMatrix<f64> {
    (m + m.transpose()) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (DMatrix<f64>, Quadratic) {
        let sigma = DMatrix::from_row_slice(2, 2, &[1.0, 0.3, 0.3, 0.5]);
        let h = DMatrix::from_row_slice(2, 2, &[2.0, -0.4, -0.4, 1.0]);
        let q = Quadratic::new(h, DVector::from_vec(vec![0.5, -1.0]), 0.25).unwrap();
        (sigma, q)
    }

    #[test]
    fn errors_instead_of_panics() {
        let (sigma, q) = setup();
        let mu = DVector::from_vec(vec![0.0, 0.0]);
        assert_eq!(
            exact_em_step(&DVector::zeros(3), &sigma, &q, 1.0),
            Err(TheoryError::DimensionMismatch {
                what: "mu",
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            log_likelihood(&mu, &sigma, &q, 0.0),
            Err(TheoryError::InvalidLambda(0.0))
        );
        let not_pd = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
        assert!(matches!(
            posterior_covariance(&not_pd, &q.h, 1.0),
            Err(TheoryError::NotPositiveDefinite { what: "Sigma" })
        ));
        let asym = DMatrix::from_row_slice(2, 2, &[1.0, 0.1, 0.0, 1.0]);
        assert!(matches!(
            em_map_matrix(&asym, &q.h, 1.0),
            Err(TheoryError::NotSymmetric { .. })
        ));
        assert!(matches!(
            em_map_matrix(&DMatrix::zeros(2, 3), &q.h, 1.0),
            Err(TheoryError::NotSquare { .. })
        ));
        // posterior does not exist: H/λ far too negative
        let very_neg = DMatrix::identity(2, 2) * -10.0;
        assert!(matches!(
            contraction_rate(&sigma, &very_neg, 1.0),
            Err(TheoryError::NotPositiveDefinite { .. })
        ));
        assert!(q.try_cost(&[1.0]).is_err());
        assert!(Quadratic::new(DMatrix::identity(2, 2), DVector::zeros(1), 0.0).is_err());
    }

    #[test]
    fn forms_agree() {
        let (sigma, q) = setup();
        let lambda = 0.7;
        let mu = DVector::from_vec(vec![1.5, 2.0]);
        let sigma_inv = sigma.clone().try_inverse().unwrap();
        let post = posterior_covariance(&sigma, &q.h, lambda).unwrap();
        let direct = (&sigma_inv + &q.h / lambda).try_inverse().unwrap();
        assert!((&post - &direct).amax() < 1e-13);
        let a = em_map_matrix(&sigma, &q.h, lambda).unwrap();
        let a_direct = (DMatrix::identity(2, 2) + &sigma * &q.h / lambda)
            .try_inverse()
            .unwrap();
        assert!((&a - &a_direct).amax() < 1e-13);
        let next = exact_em_step(&mu, &sigma, &q, lambda).unwrap();
        let next_direct = &post * (&sigma_inv * &mu + &q.h * &q.u_star / lambda);
        assert!((&next - &next_direct).amax() < 1e-13);
        // score by central differences of L
        let g = score(&mu, &sigma, &q, lambda).unwrap();
        for i in 0..2 {
            let step = 1e-5;
            let mut up = mu.clone();
            up[i] += step;
            let mut down = mu.clone();
            down[i] -= step;
            let fd = (log_likelihood(&up, &sigma, &q, lambda).unwrap()
                - log_likelihood(&down, &sigma, &q, lambda).unwrap())
                / (2.0 * step);
            assert!((fd - g[i]).abs() < 1e-8, "{fd} vs {}", g[i]);
        }
        // closed form of L with an invertible H
        let e = &mu - &q.u_star;
        let lhs = log_likelihood(&mu, &sigma, &q, lambda).unwrap();
        let m = DMatrix::identity(2, 2) + &sigma * &q.h / lambda;
        let rhs = -q.j_star / lambda
            - 0.5 * m.determinant().ln()
            - 0.5
                * (e.transpose()
                    * (DMatrix::identity(2, 2) * lambda + &q.h * &sigma)
                        .try_inverse()
                        .unwrap()
                    * &q.h
                    * &e)[(0, 0)];
        assert!((lhs - rhs).abs() < 1e-13);
        let mode = slowest_mode(&sigma, &q.h, lambda).unwrap();
        assert!((&a * &mode.direction - &mode.direction * mode.rate).amax() < 1e-13);
        assert!(mode.rate < 1.0);
        // the second weight moment of the delta method is the expected ESS fraction
        let l1 = log_likelihood(&mu, &sigma, &q, lambda).unwrap();
        let m2 = (log_likelihood(&mu, &sigma, &q, lambda / 2.0).unwrap() - 2.0 * l1).exp();
        let frac = expected_ess_fraction(&mu, &sigma, &q, lambda).unwrap();
        assert!((1.0 / m2 - frac).abs() < 1e-12 * frac, "{m2} vs {frac}");
        let (bias, sd) = ess_fraction_delta(&mu, &sigma, &q, lambda, 1000).unwrap();
        assert!(bias.is_finite() && sd > 0.0 && sd < frac);
    }
}
