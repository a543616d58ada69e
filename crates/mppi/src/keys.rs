//! Every key of [`crate::MppiConfig`], by its dotted path, with a one-line description: what
//! `mppi run --help` lists and `mppi config` prints as comments. A test checks that the list
//! and the config's fields agree, so neither can drift from the other.

/// `(dotted path, description)` for every key, in the order of the config file.
pub const KEYS: &[(&str, &str)] = &[
    (
        "samples",
        "sampled control sequences per iteration (N, K in most codes)",
    ),
    ("horizon", "controls in the plan (T)"),
    ("iterations", "EM iterations per control step"),
    (
        "u_min",
        "lower control bound per dimension (one value is broadcast)",
    ),
    ("u_max", "upper control bound per dimension"),
    ("discount", "discount of the running costs, in (0, 1]"),
    (
        "shift_fill",
        "last slot of the warm-started plan: last | zero",
    ),
    ("seed", "random seed; results are a pure function of it"),
    (
        "threads",
        "rollout threads, at most the machine's cores (results do not depend on it)",
    ),
    (
        "parallel",
        "with threads > 1: auto (measure the pool against one thread, use the faster) | always",
    ),
    (
        "precision",
        "rollout precision: f64 | f32 (samples and weights stay f64)",
    ),
    (
        "normals",
        "standard-normal generator: exact (f64 ziggurat) | fast (f32 ziggurat, ~2x faster)",
    ),
    (
        "diagnostics",
        "basic | full (KL step, M-step gain and gap, contraction)",
    ),
    (
        "deadline_ms",
        "wall-clock budget of one control step in ms (stops iterating; absent: none)",
    ),
    (
        "memory_limit_mb",
        "largest workspace the planner may allocate, in MiB",
    ),
    (
        "proposal.kind",
        "sampling distribution: gaussian | gaussian_diag | gaussian_full | colored | spline | beta | categorical | mixture",
    ),
    (
        "proposal.noise_sigma",
        "exploration std per control dimension (scalar or list)",
    ),
    (
        "proposal.noise_covariance",
        "full m x m covariance of one step, e.g. [[1.0, 0.0], [0.0, 0.25]]",
    ),
    (
        "proposal.std_min",
        "floor of adapted stds (gaussian_diag, gaussian_full, mixture)",
    ),
    ("proposal.std_max", "ceiling of adapted stds"),
    (
        "proposal.std_reset",
        "reset the adapted spread at every control step (TD-MPC2)",
    ),
    (
        "proposal.prior_weight",
        "pseudo-count pulling adapted moments toward the initial spread",
    ),
    (
        "proposal.covariance_block",
        "gaussian_full covariance: step (m x m per step) | sequence (whole plan)",
    ),
    (
        "proposal.shrinkage",
        "gaussian_full shrinkage toward the diagonal, in [0, 1]",
    ),
    (
        "proposal.correlation",
        "colored: AR(1) correlation of consecutive steps, in [0, 1)",
    ),
    ("proposal.knots", "spline: number of knots, 2 ..= horizon"),
    (
        "proposal.concentration_max",
        "beta: cap of the concentration alpha + beta",
    ),
    (
        "proposal.categories",
        "categorical: the control values, inside the bounds",
    ),
    (
        "proposal.floor",
        "categorical: probability floor, in [0, 1)",
    ),
    (
        "proposal.components",
        "mixture: number of components, 1 ..= samples",
    ),
    (
        "proposal.inner_iterations",
        "mixture: inner EM iterations per M-step",
    ),
    (
        "schedule.kind",
        "annealing between iterations: constant | dial | dial_exp | ve | vp",
    ),
    (
        "schedule.scale",
        "dial: multiplier of the whole schedule (sigma_scale)",
    ),
    (
        "schedule.iteration_factor",
        "dial: spread factor per iteration, in (0, 1]",
    ),
    (
        "schedule.horizon_factor",
        "dial: spread factor per step closer to now, in (0, 1]",
    ),
    (
        "schedule.first_step_iterations",
        "dial, dial_exp: iterations at the first control step",
    ),
    (
        "schedule.beta_iterations",
        "dial_exp: spread falls by e over beta_iterations * N iterations",
    ),
    (
        "schedule.beta_horizon",
        "dial_exp: spread grows by e^(1/beta_horizon) over the horizon",
    ),
    (
        "schedule.sigma_max",
        "ve: largest noise level (first iteration)",
    ),
    (
        "schedule.sigma_min",
        "ve: smallest noise level (last iteration)",
    ),
    ("schedule.beta", "vp: beta sequence, linear | cosine"),
    (
        "schedule.beta_min",
        "vp linear: first beta, in (0, beta_max]",
    ),
    ("schedule.beta_max", "vp linear: last beta, below 1"),
    ("schedule.cosine_offset", "vp cosine: offset s >= 0"),
    (
        "schedule.spread",
        "vp: sample spread, mbd (sqrt(1-abar)) | posterior (sqrt((1-abar)/abar))",
    ),
    (
        "schedule.sampler",
        "ve, vp: annealed (EM step) | ancestral | euler_maruyama (reverse diffusion)",
    ),
    (
        "weighting.temperature.kind",
        "temperature rule: fixed | std_normalized | ess_target",
    ),
    (
        "weighting.temperature.lambda",
        "fixed: the temperature in cost units",
    ),
    (
        "weighting.temperature.scale",
        "std_normalized: lambda = scale * std(costs)",
    ),
    (
        "weighting.temperature.target",
        "ess_target: target ESS / N, in (0, 1]",
    ),
    (
        "weighting.elites",
        "keep only the best elites samples (CEM, TD-MPC2)",
    ),
    (
        "weighting.control_cost_gamma",
        "Williams control-cost weight (0: plain EM-MPPI)",
    ),
    (
        "update.step_size",
        "step size alpha in mean parameters (1 = EM)",
    ),
    ("update.acceleration", "none | over_relaxed | heavy_ball"),
    ("update.momentum", "heavy-ball momentum beta, in [0, 1)"),
    (
        "update.safeguard",
        "accept an accelerated step only if it beats EM on the surrogate",
    ),
    (
        "smoothing.max_step_change",
        "largest |u_t - u_(t-1)| per control step, per dimension (scalar or list; a rate limit R/s is R*dt; absent: none)",
    ),
    (
        "smoothing.max_step_accel",
        "largest |u_t - 2u_(t-1) + u_(t-2)| per control step^2 (an acceleration limit A/s^2 is A*dt^2; absent: none)",
    ),
    (
        "smoothing.savgol_window",
        "Savitzky-Golay smoothing of the plan: window in steps, odd, 3 ..= horizon (0: off)",
    ),
    (
        "smoothing.savgol_order",
        "Savitzky-Golay polynomial order, below savgol_window",
    ),
];

/// The description of the key at `path`, if it is one.
///
/// ```
/// assert!(mppi::keys::describe("proposal.std_min").unwrap().contains("floor"));
/// assert!(mppi::keys::describe("std_min").is_none());
/// ```
#[must_use]
pub fn describe(path: &str) -> Option<&'static str> {
    KEYS.iter().find(|(k, _)| *k == path).map(|(_, d)| *d)
}
