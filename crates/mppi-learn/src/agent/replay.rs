//! The replay buffer: whole episodes of observations, actions, rewards and the planner's
//! distribution over each decision's action (its mean and std after the last EM iteration),
//! which the PO-MPC family uses as the prior (docs/theory.md §G.4). Batches are
//! sub-trajectories of `H + 1` states drawn uniformly over all windows of finished episodes.

use std::io::{Read, Write};
use std::path::Path;

use mppi::rng::SampleRng;

use crate::LearnError;

/// One finished episode (`T` decisions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Episode {
    /// `(T + 1) × obs_dim` observations.
    pub obs: Vec<f32>,
    /// `T × act_dim` actions taken.
    pub actions: Vec<f32>,
    /// `T` rewards.
    pub rewards: Vec<f32>,
    /// `T × act_dim`: the planner's mean for the first action of each decision.
    pub plan_mean: Vec<f32>,
    /// `T × act_dim`: the planner's std for it.
    pub plan_std: Vec<f32>,
}

impl Episode {
    /// Number of decisions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Whether it holds no decision.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// A batch of `B` sub-trajectories, time-major (`row = t · B + b`).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Rows per time step.
    pub size: usize,
    /// `(H + 1) · B × obs_dim`.
    pub obs: Vec<f32>,
    /// `H · B × act_dim`.
    pub actions: Vec<f32>,
    /// `H · B`.
    pub rewards: Vec<f32>,
    /// `(H + 1) · B × act_dim`: the stored planner mean at each state.
    pub plan_mean: Vec<f32>,
    /// `(H + 1) · B × act_dim`: the stored planner std at each state.
    pub plan_std: Vec<f32>,
    /// `(H + 1) · B` (episode, step) of each state, for reanalysis.
    pub index: Vec<(usize, usize)>,
}

/// Finished episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    obs_dim: usize,
    act_dim: usize,
    horizon: usize,
    episodes: Vec<Episode>,
    /// Windows in episodes `0..i` (prefix sums), for uniform sampling.
    windows: Vec<usize>,
}

impl Replay {
    /// An empty buffer for sub-trajectories of `horizon` decisions.
    #[must_use]
    pub fn new(obs_dim: usize, act_dim: usize, horizon: usize) -> Self {
        Replay {
            obs_dim,
            act_dim,
            horizon,
            episodes: Vec::new(),
            windows: vec![0],
        }
    }

    /// Add a finished episode (checked for consistent lengths and finite values).
    pub fn push(&mut self, episode: Episode) -> Result<(), LearnError> {
        let t = episode.len();
        let (o, m) = (self.obs_dim, self.act_dim);
        let ok = episode.obs.len() == (t + 1) * o
            && episode.actions.len() == t * m
            && episode.plan_mean.len() == t * m
            && episode.plan_std.len() == t * m;
        if !ok {
            return Err(LearnError::Settings(format!(
                "replay: an episode of {t} decisions has inconsistent lengths"
            )));
        }
        let finite = [
            &episode.obs,
            &episode.actions,
            &episode.rewards,
            &episode.plan_mean,
            &episode.plan_std,
        ]
        .iter()
        .all(|v| v.iter().all(|x| x.is_finite()));
        if !finite {
            return Err(LearnError::Settings(
                "replay: an episode holds a non-finite value".into(),
            ));
        }
        let w = t.saturating_sub(self.horizon);
        let last = *self.windows.last().unwrap_or(&0);
        self.episodes.push(episode);
        self.windows.push(last + w);
        Ok(())
    }

    /// Decisions stored.
    #[must_use]
    pub fn transitions(&self) -> usize {
        self.episodes.iter().map(Episode::len).sum()
    }

    /// The episodes.
    #[must_use]
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// Sub-trajectory windows available (start `s` with `s + H < T`, so every state of the
    /// window has a stored planner distribution).
    #[must_use]
    pub fn windows(&self) -> usize {
        *self.windows.last().unwrap_or(&0)
    }

    /// Draw `size` windows uniformly with `rng` into `batch`.
    pub fn sample(
        &self,
        size: usize,
        rng: &mut SampleRng,
        batch: &mut Batch,
    ) -> Result<(), LearnError> {
        let total = self.windows();
        if total == 0 {
            return Err(LearnError::Settings(format!(
                "replay: no episode is longer than the horizon {}",
                self.horizon
            )));
        }
        let (h, o, m) = (self.horizon, self.obs_dim, self.act_dim);
        batch.size = size;
        batch.obs.resize((h + 1) * size * o, 0.0);
        batch.actions.resize(h * size * m, 0.0);
        batch.rewards.resize(h * size, 0.0);
        batch.plan_mean.resize((h + 1) * size * m, 0.0);
        batch.plan_std.resize((h + 1) * size * m, 0.0);
        batch.index.resize((h + 1) * size, (0, 0));
        for b in 0..size {
            let k = (rng.next_bits() % total as u64) as usize;
            // the episode whose window range holds k
            let e = self.windows.partition_point(|&c| c <= k) - 1;
            let start = k - self.windows[e];
            let ep = &self.episodes[e];
            for t in 0..=h {
                let row = t * size + b;
                let s = start + t;
                batch.obs[row * o..(row + 1) * o].copy_from_slice(&ep.obs[s * o..(s + 1) * o]);
                batch.plan_mean[row * m..(row + 1) * m]
                    .copy_from_slice(&ep.plan_mean[s * m..(s + 1) * m]);
                batch.plan_std[row * m..(row + 1) * m]
                    .copy_from_slice(&ep.plan_std[s * m..(s + 1) * m]);
                batch.index[row] = (e, s);
                if t < h {
                    batch.actions[row * m..(row + 1) * m]
                        .copy_from_slice(&ep.actions[s * m..(s + 1) * m]);
                    batch.rewards[row] = ep.rewards[s];
                }
            }
        }
        Ok(())
    }

    /// Replace the stored planner distribution of step `step` of episode `episode`
    /// (reanalysis).
    pub fn set_plan(&mut self, episode: usize, step: usize, mean: &[f32], std: &[f32]) {
        let m = self.act_dim;
        if let Some(ep) = self.episodes.get_mut(episode)
            && step < ep.len()
        {
            ep.plan_mean[step * m..(step + 1) * m].copy_from_slice(mean);
            ep.plan_std[step * m..(step + 1) * m].copy_from_slice(std);
        }
    }

    /// Write the buffer to `path` (little-endian `f32`s after a small header).
    pub fn save(&self, path: &Path) -> Result<(), LearnError> {
        let io = |e: std::io::Error| LearnError::Checkpoint(format!("{}: {e}", path.display()));
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
        let header = [
            MAGIC,
            self.obs_dim as u64,
            self.act_dim as u64,
            self.horizon as u64,
            self.episodes.len() as u64,
        ];
        for v in header {
            out.write_all(&v.to_le_bytes()).map_err(io)?;
        }
        for ep in &self.episodes {
            out.write_all(&(ep.len() as u64).to_le_bytes())
                .map_err(io)?;
            for part in [
                &ep.obs,
                &ep.actions,
                &ep.rewards,
                &ep.plan_mean,
                &ep.plan_std,
            ] {
                for v in part.iter() {
                    out.write_all(&v.to_le_bytes()).map_err(io)?;
                }
            }
        }
        out.flush().map_err(io)
    }

    /// Read what [`Replay::save`] wrote.
    pub fn load(path: &Path) -> Result<Self, LearnError> {
        let io = |e: std::io::Error| LearnError::Checkpoint(format!("{}: {e}", path.display()));
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let corrupt = || LearnError::Checkpoint(format!("{} is not a replay file", path.display()));
        let mut at = 0usize;
        let u64_at = |at: &mut usize| -> Result<u64, LearnError> {
            let b = bytes.get(*at..*at + 8).ok_or_else(corrupt)?;
            *at += 8;
            Ok(u64::from_le_bytes(b.try_into().map_err(|_| corrupt())?))
        };
        if u64_at(&mut at)? != MAGIC {
            return Err(corrupt());
        }
        let o = u64_at(&mut at)? as usize;
        let m = u64_at(&mut at)? as usize;
        let h = u64_at(&mut at)? as usize;
        let n = u64_at(&mut at)? as usize;
        let mut replay = Replay::new(o, m, h);
        for _ in 0..n {
            let t = u64_at(&mut at)? as usize;
            let mut take = |count: usize| -> Result<Vec<f32>, LearnError> {
                let end = at
                    .checked_add(count.checked_mul(4).ok_or_else(corrupt)?)
                    .ok_or_else(corrupt)?;
                let b = bytes.get(at..end).ok_or_else(corrupt)?;
                at = end;
                Ok(b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect())
            };
            let episode = Episode {
                obs: take((t + 1) * o)?,
                actions: take(t * m)?,
                rewards: take(t)?,
                plan_mean: take(t * m)?,
                plan_std: take(t * m)?,
            };
            replay.push(episode)?;
        }
        Ok(replay)
    }
}

const MAGIC: u64 = 0x6d70_7069_7265_706c; // "mppirepl"

#[cfg(test)]
mod tests {
    use super::*;
    use mppi::rng::sample_rng;

    fn episode(t: usize, o: usize, m: usize, tag: f32) -> Episode {
        Episode {
            obs: (0..(t + 1) * o).map(|i| tag + i as f32).collect(),
            actions: vec![0.5; t * m],
            rewards: (0..t).map(|i| i as f32).collect(),
            plan_mean: vec![0.1; t * m],
            plan_std: vec![1.0; t * m],
        }
    }

    #[test]
    fn windows_stay_inside_episodes_and_save_round_trips() {
        let mut r = Replay::new(2, 1, 3);
        r.push(episode(10, 2, 1, 0.0)).unwrap();
        r.push(episode(3, 2, 1, 1000.0)).unwrap(); // too short: no window
        r.push(episode(6, 2, 1, 2000.0)).unwrap();
        assert_eq!(r.windows(), 7 + 3);
        let mut batch = Batch::default();
        let mut rng = sample_rng(1, 0, 0, 0);
        r.sample(64, &mut rng, &mut batch).unwrap();
        for b in 0..64 {
            let (e, s) = batch.index[b];
            assert!(e != 1 && s + 3 < r.episodes()[e].len());
            // consecutive observations of one episode
            assert_eq!(batch.obs[(64 + b) * 2], batch.obs[b * 2] + 2.0);
        }
        let path = std::env::temp_dir().join(format!("replay-test-{}.bin", std::process::id()));
        r.save(&path).unwrap();
        assert_eq!(Replay::load(&path).unwrap(), r);
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(Replay::load(&path).is_err());
        let _ = std::fs::remove_file(&path);
        assert!(
            r.push(Episode {
                rewards: vec![0.0],
                ..Episode::default()
            })
            .is_err()
        );
    }
}
