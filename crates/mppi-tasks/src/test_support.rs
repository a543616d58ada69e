//! Helpers shared by the tasks' unit tests.

use mppi::{Cost, Dynamics};

/// Deterministic uniform numbers in `[lo, hi)` from a 64-bit LCG (top 53 bits).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// The next number, uniform in `[lo, hi)`.
    pub(crate) fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (hi - lo) * ((self.0 >> 11) as f64 / (1u64 << 53) as f64)
    }
}

/// Check that `step_block` and `running_block` (at `t = 0`), and `step_and_cost_block` where
/// the model has it, agree bit for bit with `step` and `running` on random SoA blocks of every
/// lane count in `lanes_list`; and that the float32 block methods agree with `step` and
/// `running` evaluated at the same (f32-rounded) inputs to a relative `2e-6 (1 + |value|)`,
/// the fused float32 pass bit for bit with the unfused one.
///
/// State component `i` is drawn uniformly from `state_ranges[i]` and control component `j`
/// from `control_ranges[j]` (ranges wider than the control bounds exercise the clamping).
/// The ranges must have one entry per state and control component of `model`.
pub(crate) fn assert_block_matches_scalar<M: Dynamics + Cost + ?Sized>(
    model: &M,
    state_ranges: &[(f64, f64)],
    control_ranges: &[(f64, f64)],
    lanes_list: &[usize],
    seed: u64,
) {
    let (n, m) = (model.state_dim(), model.control_dim());
    assert_eq!(state_ranges.len(), n, "one range per state component");
    assert_eq!(control_ranges.len(), m, "one range per control component");
    let mut rng = Lcg(seed);
    for &lanes in lanes_list {
        let mut soa = |ranges: &[(f64, f64)]| -> Vec<f64> {
            ranges
                .iter()
                .flat_map(|&(lo, hi)| (0..lanes).map(move |_| (lo, hi)))
                .map(|(lo, hi)| rng.uniform(lo, hi))
                .collect()
        };
        let x = soa(state_ranges);
        let u = soa(control_ranges);
        let mut next = vec![0.0; n * lanes];
        let mut costs = vec![0.0; lanes];
        let mut tmp = vec![0.0; 2 * n + m];
        model.step_block(lanes, &x, &u, &mut next, &mut tmp);
        model.running_block(lanes, 0, &x, &u, &mut costs, &mut tmp);
        // a fused step-and-cost pass, where the model has one, gives the same bits
        let (mut fused_next, mut fused_costs) = (vec![f64::NAN; n * lanes], vec![f64::NAN; lanes]);
        if model.step_and_cost_block(
            lanes,
            0,
            &x,
            &u,
            &mut fused_next,
            &mut fused_costs,
            &mut tmp,
        ) {
            let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fused_next), bits(&next), "fused step: lanes {lanes}");
            assert_eq!(
                bits(&fused_costs),
                bits(&costs),
                "fused cost: lanes {lanes}"
            );
        }
        assert_f32_block_close(model, lanes, &x, &u);
        for l in 0..lanes {
            let xs: Vec<f64> = (0..n).map(|i| x[i * lanes + l]).collect();
            let us: Vec<f64> = (0..m).map(|j| u[j * lanes + l]).collect();
            let mut want = vec![0.0; n];
            model.step(&xs, &us, &mut want);
            for i in 0..n {
                assert_eq!(
                    next[i * lanes + l].to_bits(),
                    want[i].to_bits(),
                    "step: lanes {lanes}, lane {l}, component {i}, x {xs:?}, u {us:?}"
                );
            }
            let c = model.running(&xs, &us, 0);
            assert_eq!(
                costs[l].to_bits(),
                c.to_bits(),
                "running: lanes {lanes}, lane {l}, x {xs:?}, u {us:?}"
            );
        }
    }
}

/// The float32 half of [`assert_block_matches_scalar`] on one SoA block.
fn assert_f32_block_close<M: Dynamics + Cost + ?Sized>(
    model: &M,
    lanes: usize,
    x: &[f64],
    u: &[f64],
) {
    let (n, m) = (model.state_dim(), model.control_dim());
    let x32: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let u32: Vec<f32> = u.iter().map(|v| *v as f32).collect();
    let mut next = vec![f32::NAN; n * lanes];
    let mut costs = vec![f32::NAN; lanes];
    let mut tmp = vec![0.0; 2 * n + m];
    model.step_block_f32(lanes, &x32, &u32, &mut next, &mut tmp);
    model.running_block_f32(lanes, 0, &x32, &u32, &mut costs, &mut tmp);
    let (mut fused_next, mut fused_costs) = (vec![f32::NAN; n * lanes], vec![f32::NAN; lanes]);
    if model.step_and_cost_block_f32(
        lanes,
        0,
        &x32,
        &u32,
        &mut fused_next,
        &mut fused_costs,
        &mut tmp,
    ) {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&fused_next),
            bits(&next),
            "f32 fused step: lanes {lanes}"
        );
        assert_eq!(
            bits(&fused_costs),
            bits(&costs),
            "f32 fused cost: lanes {lanes}"
        );
    }
    let close = |got: f32, want: f64| (f64::from(got) - want).abs() <= 2e-6 * (1.0 + want.abs());
    for l in 0..lanes {
        let xs: Vec<f64> = (0..n).map(|i| f64::from(x32[i * lanes + l])).collect();
        let us: Vec<f64> = (0..m).map(|j| f64::from(u32[j * lanes + l])).collect();
        let mut want = vec![0.0; n];
        model.step(&xs, &us, &mut want);
        for i in 0..n {
            let got = next[i * lanes + l];
            assert!(
                close(got, want[i]),
                "f32 step: lanes {lanes}, lane {l}, component {i}: {got} vs {}, x {xs:?}, u {us:?}",
                want[i]
            );
        }
        let c = model.running(&xs, &us, 0);
        assert!(
            close(costs[l], c),
            "f32 running: lanes {lanes}, lane {l}: {} vs {c}, x {xs:?}, u {us:?}",
            costs[l]
        );
    }
}
