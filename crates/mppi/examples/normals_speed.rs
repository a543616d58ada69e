//! Time the two standard-normal generators on whole blocks of 32 lanes × 60 rows:
//! `cargo run --release -p mppi --example normals_speed [exact|fast]` (both by default).
use mppi::rng::{BlockRng, Normals};
use std::time::Instant;

fn main() {
    let modes = match std::env::args().nth(1).as_deref() {
        Some("exact") => vec![Normals::Exact],
        Some("fast") => vec![Normals::Fast],
        _ => vec![Normals::Exact, Normals::Fast, Normals::Exact, Normals::Fast],
    };
    let rows = 60;
    let mut out = vec![0.0; 32 * rows];
    for normals in modes {
        let n_blocks = 200_000;
        let t = Instant::now();
        let mut acc = 0.0;
        for b in 0..n_blocks {
            let mut rng = BlockRng::new(1, 0, 0, b * 32, 32).with_normals(normals);
            rng.normal_rows(&mut out);
            acc += out[b % out.len()];
        }
        let dt = t.elapsed().as_secs_f64();
        println!(
            "{normals:?}: {:.2} ns per normal (checksum {acc:.3})",
            dt * 1e9 / (n_blocks * 32 * rows) as f64
        );
    }
}
