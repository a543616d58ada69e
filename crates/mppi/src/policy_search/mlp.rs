//! [`MlpPolicy`]: a small `tanh` network with hand-written forward and backward passes.

use crate::error::MppiError;
use crate::rng::sample_rng;

#[cfg(doc)]
use super::AdamSettings;
use super::policies::{Policy, with_action_buffer};

/// A multilayer perceptron with one or two `tanh` hidden layers and a linear output:
///
/// ```text
/// h₁ = tanh(W₁ s + b₁),  [h₂ = tanh(W₂ h₁ + b₂)],  μ_θ(s) = W_o h_L + b_o
/// ```
///
/// `θ` is the flat concatenation, layer by layer, of `W` (row-major, `out × in`) then `b`.
/// Forward and backward passes are written out here (no NN crate; the activations of a
/// small network live on the stack). Its EM M-step is Adam on the weighted negative
/// log-likelihood ([`AdamSettings`]); the backward pass gives the exact `(∂μ/∂θ)ᵀ v`, and
/// [`Policy::nll_gradient`] shares one forward pass with it.
///
/// [`Policy::initial_params`] draws `W ~ N(0, 1/in)` for the hidden layers and
/// `N(0, 0.01/in)` for the output layer from the policy's seed, biases 0: a random feature
/// map with a near-zero action.
///
/// ```
/// use mppi::policy_search::{MlpPolicy, Policy};
/// let policy = MlpPolicy::new(2, 1, &[8], 0).unwrap();
/// assert_eq!(policy.num_params(), 8 * 2 + 8 + 8 + 1);
/// let theta = policy.initial_params();
/// let mut u = [0.0];
/// policy.action(&theta, &[0.5, -0.5], 0, &mut u);
/// assert!(u[0].is_finite() && u[0].abs() < 1.0);
/// assert!(MlpPolicy::new(2, 1, &[8, 8, 8], 0).is_err()); // one or two hidden layers
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpPolicy {
    n: usize,
    m: usize,
    hidden: Vec<usize>,
    seed: u64,
}

/// Where one dense layer's weights and biases start in `θ`.
#[derive(Debug, Clone, Copy)]
struct Layer {
    inputs: usize,
    outputs: usize,
    w: usize,
    b: usize,
}

impl MlpPolicy {
    /// Widest hidden layer.
    pub const MAX_WIDTH: usize = 4096;

    /// A network from `state_dim` inputs through the `hidden` widths (one or two layers, each
    /// from 1 to [`MlpPolicy::MAX_WIDTH`]) to `control_dim` outputs; `seed` draws its initial
    /// parameters.
    pub fn new(
        state_dim: usize,
        control_dim: usize,
        hidden: &[usize],
        seed: u64,
    ) -> Result<Self, MppiError> {
        if state_dim == 0 || control_dim == 0 {
            return Err(MppiError::config(
                "policy",
                "state and control dimensions must be >= 1",
            ));
        }
        if hidden.is_empty() || hidden.len() > 2 {
            return Err(MppiError::config(
                "hidden",
                format!(
                    "one or two hidden layers are supported, got {}",
                    hidden.len()
                ),
            ));
        }
        if let Some(h) = hidden.iter().find(|h| **h == 0 || **h > Self::MAX_WIDTH) {
            return Err(MppiError::config(
                "hidden",
                format!(
                    "every hidden width must be from 1 to {}, got {h}",
                    Self::MAX_WIDTH
                ),
            ));
        }
        Ok(MlpPolicy {
            n: state_dim,
            m: control_dim,
            hidden: hidden.to_vec(),
            seed,
        })
    }

    /// The hidden widths.
    #[must_use]
    pub fn hidden(&self) -> &[usize] {
        &self.hidden
    }

    /// The dense layers, input to output, with their offsets in `θ` (at most three).
    fn layers(&self) -> ([Layer; 3], usize) {
        let mut layers = [Layer {
            inputs: 0,
            outputs: 0,
            w: 0,
            b: 0,
        }; 3];
        let mut inputs = self.n;
        let mut offset = 0;
        let widths = self.hidden.iter().copied().chain(std::iter::once(self.m));
        let mut count = 0;
        for (layer, outputs) in layers.iter_mut().zip(widths) {
            *layer = Layer {
                inputs,
                outputs,
                w: offset,
                b: offset + inputs * outputs,
            };
            offset += (inputs + 1) * outputs;
            inputs = outputs;
            count += 1;
        }
        (layers, count)
    }
}

impl MlpPolicy {
    /// Run `f` with scratch for the activations and their gradients (`2·(h₁ + h₂)` entries):
    /// on the stack for a small network, else allocated.
    fn with_scratch<R>(&self, f: impl FnOnce(&mut [f64]) -> R) -> R {
        const STACK: usize = 256;
        let need = 2 * self.hidden.iter().sum::<usize>();
        if need <= STACK {
            let mut stack = [0.0; STACK];
            f(&mut stack[..need])
        } else {
            f(&mut vec![0.0; need])
        }
    }

    /// The forward pass: the hidden activations into the first half of `scratch`
    /// (`h₁`, then `h₂`), the output into `out`.
    fn forward(&self, theta: &[f64], state: &[f64], scratch: &mut [f64], out: &mut [f64]) {
        let (layers, count) = self.layers();
        let w1 = layers[0].outputs;
        let (h1, rest) = scratch.split_at_mut(w1);
        dense(theta, layers[0], state, h1, true);
        if count == 2 {
            dense(theta, layers[1], h1, out, false);
        } else {
            let h2 = &mut rest[..layers[1].outputs];
            dense(theta, layers[1], h1, h2, true);
            dense(theta, layers[2], h2, out, false);
        }
    }

    /// The backward pass after [`MlpPolicy::forward`] left its activations in `scratch`:
    /// `grad += (∂μ/∂θ)ᵀ v`, the activations' gradients in the second half of `scratch`.
    fn backward(
        &self,
        theta: &[f64],
        state: &[f64],
        scratch: &mut [f64],
        v: &[f64],
        grad: &mut [f64],
    ) {
        let (layers, count) = self.layers();
        let total = self.hidden.iter().sum::<usize>();
        let (acts, deltas) = scratch.split_at_mut(total);
        let w1 = layers[0].outputs;
        let (h1, h2) = acts.split_at(w1);
        let (d1, d2) = deltas.split_at_mut(w1);
        if count == 2 {
            // output layer: δ = v; back through tanh: δ₁ = (W_oᵀ v) ⊙ (1 − h₁²)
            dense_back(theta, layers[1], h1, v, grad, Some(d1));
        } else {
            let w2 = layers[1].outputs;
            let (h2, d2) = (&h2[..w2], &mut d2[..w2]);
            dense_back(theta, layers[2], h2, v, grad, Some(&mut *d2));
            for (d, h) in d2.iter_mut().zip(h2) {
                *d *= 1.0 - h * h;
            }
            dense_back(theta, layers[1], h1, d2, grad, Some(&mut *d1));
        }
        for (d, h) in d1.iter_mut().zip(h1) {
            *d *= 1.0 - h * h;
        }
        dense_back(theta, layers[0], state, d1, grad, None);
    }
}

/// `out = tanh?(W x + b)` for one layer.
fn dense(theta: &[f64], layer: Layer, x: &[f64], out: &mut [f64], squash: bool) {
    let w = &theta[layer.w..layer.w + layer.inputs * layer.outputs];
    let b = &theta[layer.b..layer.b + layer.outputs];
    for ((o, row), bi) in out.iter_mut().zip(w.chunks_exact(layer.inputs)).zip(b) {
        let z = bi + row.iter().zip(x).map(|(a, c)| a * c).sum::<f64>();
        *o = if squash { z.tanh() } else { z };
    }
}

/// `grad_W += δ xᵀ`, `grad_b += δ` for one layer; then, if `back` is given, the input's
/// gradient `Wᵀ δ` into it.
fn dense_back(
    theta: &[f64],
    layer: Layer,
    x: &[f64],
    delta: &[f64],
    grad: &mut [f64],
    back: Option<&mut [f64]>,
) {
    let (ni, no) = (layer.inputs, layer.outputs);
    for (i, d) in delta[..no].iter().enumerate() {
        let row = &mut grad[layer.w + i * ni..layer.w + (i + 1) * ni];
        for (g, xv) in row.iter_mut().zip(x) {
            *g += d * xv;
        }
        grad[layer.b + i] += d;
    }
    if let Some(back) = back {
        let w = &theta[layer.w..layer.w + ni * no];
        back[..ni].fill(0.0);
        for (row, d) in w.chunks_exact(ni).zip(delta) {
            for (bk, wv) in back.iter_mut().zip(row) {
                *bk += wv * d;
            }
        }
    }
}

impl Policy for MlpPolicy {
    fn state_dim(&self) -> usize {
        self.n
    }
    fn control_dim(&self) -> usize {
        self.m
    }
    fn num_params(&self) -> usize {
        let (layers, count) = self.layers();
        layers[..count]
            .iter()
            .map(|l| (l.inputs + 1) * l.outputs)
            .sum()
    }
    fn action(&self, theta: &[f64], state: &[f64], _t: usize, out: &mut [f64]) {
        self.with_scratch(|scratch| {
            self.forward(theta, state, scratch, out);
        });
    }
    fn vjp(&self, theta: &[f64], state: &[f64], _t: usize, v: &[f64], grad: &mut [f64]) {
        self.with_scratch(|scratch| {
            with_action_buffer(self.m, |out| {
                self.forward(theta, state, scratch, out);
                self.backward(theta, state, scratch, v, grad);
            });
        });
    }
    fn nll_gradient(
        &self,
        theta: &[f64],
        state: &[f64],
        _t: usize,
        action: &[f64],
        weight: f64,
        grad: &mut [f64],
    ) {
        self.with_scratch(|scratch| {
            with_action_buffer(self.m, |v| {
                self.forward(theta, state, scratch, v);
                for (vj, aj) in v.iter_mut().zip(action) {
                    *vj = weight * (*vj - aj);
                }
                self.backward(theta, state, scratch, v, grad);
            });
        });
    }
    fn initial_params(&self) -> Vec<f64> {
        let (layers, count) = self.layers();
        let mut theta = vec![0.0; self.num_params()];
        // a stream of its own (the searches use step 0)
        let mut rng = sample_rng(self.seed, u64::MAX, 0, 0);
        for (i, layer) in layers[..count].iter().enumerate() {
            let gain = if i + 1 == count { 0.1 } else { 1.0 };
            let scale = gain / (layer.inputs as f64).sqrt();
            for w in &mut theta[layer.w..layer.b] {
                *w = scale * rng.normal();
            }
        }
        theta
    }
}
