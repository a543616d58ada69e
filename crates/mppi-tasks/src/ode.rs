//! The fixed-step integrator shared by the tasks with continuous-time dynamics.

/// An autonomous ODE `ṡ = f(s)` (hold the control constant inside it for a zero-order hold).
///
/// A trait rather than a closure so that implementations can mark [`Ode::deriv`]
/// `#[inline(always)]`: a closure that calls a large derivative is not inlined into [`rk4`]'s
/// four stages, which keeps a block's loop over lanes from vectorizing.
pub(crate) trait Ode<const N: usize> {
    /// The time derivative `f(s)`.
    fn deriv(&self, s: [f64; N]) -> [f64; N];
}

/// One classic Runge–Kutta (RK4) step of length `h` of the autonomous ODE `f`.
#[inline(always)]
pub(crate) fn rk4<const N: usize>(s: [f64; N], h: f64, f: &impl Ode<N>) -> [f64; N] {
    let add = |a: [f64; N], k: [f64; N], c: f64| {
        let mut out = a;
        for i in 0..N {
            out[i] += c * k[i];
        }
        out
    };
    let k1 = f.deriv(s);
    let k2 = f.deriv(add(s, k1, 0.5 * h));
    let k3 = f.deriv(add(s, k2, 0.5 * h));
    let k4 = f.deriv(add(s, k3, h));
    let mut out = [0.0; N];
    for i in 0..N {
        out[i] = s[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    out
}
