//! # mppi-theory — what the theory predicts, and how the planner measures up
//!
//! The core crate `mppi` is a library for control; this crate holds the theory that checks
//! it (docs/theory.md):
//!
//! - [`closed_form`]: exact EM-MPPI on a Gaussian sampling distribution and a quadratic cost
//!   (posterior covariance, the EM map, `L(μ)`, its score and natural gradient, contraction
//!   rates, the expected ESS);
//! - [`experiments`]: theory versus measurement, each a list of checks with tolerances and the
//!   series the CLI plots (`mppi theory`);
//! - [`stats`]: the quantiles behind the derived tolerances (normal, Student `t`, chi-square).
//!
//! ```
//! use mppi_theory::closed_form::{self, DMatrix, Quadratic};
//! use mppi_theory::closed_form::DVector;
//! let quad = Quadratic::new(DMatrix::from_element(1, 1, 2.0), DVector::from_element(1, 1.0), 0.0)?;
//! let rho = closed_form::contraction_rate(&DMatrix::from_element(1, 1, 0.5), &quad.h, 1.0)?;
//! assert!((rho - 0.5).abs() < 1e-15);
//! # Ok::<(), closed_form::TheoryError>(())
//! ```

pub mod closed_form;
pub mod experiments;
pub mod stats;
