//! The fixed-step integrator shared by the tasks with continuous-time dynamics.

/// One classic Runge–Kutta (RK4) step of length `h` of the autonomous ODE `ṡ = f(s)`
/// (hold the control constant inside `f` for a zero-order hold).
#[inline(always)]
pub(crate) fn rk4<const N: usize>(
    s: [f64; N],
    h: f64,
    f: impl Fn([f64; N]) -> [f64; N],
) -> [f64; N] {
    let add = |a: [f64; N], k: [f64; N], c: f64| {
        let mut out = a;
        for i in 0..N {
            out[i] += c * k[i];
        }
        out
    };
    let k1 = f(s);
    let k2 = f(add(s, k1, 0.5 * h));
    let k3 = f(add(s, k2, 0.5 * h));
    let k4 = f(add(s, k3, h));
    let mut out = [0.0; N];
    for i in 0..N {
        out[i] = s[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    }
    out
}
