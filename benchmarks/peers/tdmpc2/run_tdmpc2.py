#!/usr/bin/env python3
"""Run the official TD-MPC2 (nicklashansen/tdmpc2) on CPU with the "TD-MPC2-lite" sizes.

Peer comparison for the project's TD-MPC2-lite (theory-spec G.5). Not part of CI.

The official code is NOT copied into this repository: it is read from --src (a work tree of
nicklashansen/tdmpc2 that setup.sh extracts to /tmp/tdmpc2), copied to a scratch directory
outside the repository, and the few CPU shims listed in PATCHES are applied to that copy as
exact string replacements (each one is checked to match exactly as often as expected, so an
upstream change makes this script fail loudly instead of silently running something else).

What runs is upstream's own OnlineTrainer loop, TDMPC2 agent, WorldModel, Buffer (torchrl) and
dm_control wrapper (action repeat 2, 500 decisions per episode). The script only
  * builds the config from upstream's config.yaml plus the overrides in LITE_OVERRIDES,
  * replaces upstream's Logger (wandb/CSV/video) by a small one that writes our CSVs,
  * wraps agent.act / agent.update / buffer.sample / env.step / trainer.eval with timers
    (the wrapped functions run unchanged),
  * enlarges the replay capacity so that it holds all data (see REPLAY below).

Usage (see README.md):
  nice -n 10 /tmp/tdmpc2-venv/bin/python benchmarks/peers/tdmpc2/run_tdmpc2.py \
      --task pendulum-swingup --steps 4000 --seed 0 --threads 1 \
      --eval-every 1000 --eval-episodes 2 --out benchmarks/results/po-mpc/tdmpc2-peer/NAME
"""
import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

# (file relative to tdmpc2/, old text, new text, expected number of matches, why)
PATCHES = [
    ("tdmpc2.py",
     "self.device = torch.device('cuda:0')",
     "self.device = torch.device('cpu')", 1,
     "agent tensors are hard-coded to cuda:0; run on the CPU"),
    ("tdmpc2.py",
     "], lr=self.cfg.lr, capturable=True)",
     "], lr=self.cfg.lr, capturable=False)", 1,
     "Adam(capturable=True) raises on CPU tensors in torch 2.7.1; capturable only keeps the "
     "step counter on the device for CUDA graphs, the update itself is the same"),
    ("tdmpc2.py",
     "lr=self.cfg.lr, eps=1e-5, capturable=True)",
     "lr=self.cfg.lr, eps=1e-5, capturable=False)", 1,
     "same, for the policy optimizer"),
    ("common/scale.py",
     "device=torch.device('cuda:0')",
     "device=torch.device('cpu')", 2,
     "RunningScale buffers are hard-coded to cuda:0"),
    ("common/buffer.py",
     "self._device = torch.device('cuda:0')",
     "self._device = torch.device('cpu')", 1,
     "sampled batches are moved to cuda:0; keep them on the CPU"),
    ("common/buffer.py",
     "mem_free, _ = torch.cuda.mem_get_info()",
     "mem_free = 0  # CPU shim: no GPU memory, so the storage goes to CPU memory", 1,
     "torch.cuda.mem_get_info() raises without a GPU; with mem_free = 0 upstream's own "
     "heuristic picks CPU storage"),
]

# theory-spec G.5 "TD-MPC2-lite" sizes (upstream defaults in comments)
LITE_OVERRIDES = dict(
    latent_dim=64,        # 512
    mlp_dim=256,          # 512
    enc_dim=256,          # 256
    num_enc_layers=2,     # 2  (=> one hidden encoder layer of enc_dim)
    simnorm_dim=8,        # 8
    num_q=2,              # 5
    num_bins=101,         # 101
    horizon=3,            # 3
    num_samples=256,      # 512
    num_pi_trajs=12,      # 24
    num_elites=32,        # 64
    iterations=4,         # 6
    temperature=0.5,      # 0.5
    min_std=0.05,         # 0.05
    max_std=2,            # 2
    batch_size=128,       # 256
)
# the sizes of this repository's PO-MPC grid, configs/po-mpc-small.toml (`--sizes small`),
# with its 1000 seed steps (upstream would take 2500 for a 500-decision episode)
SMALL_OVERRIDES = dict(LITE_OVERRIDES, latent_dim=16, mlp_dim=64, enc_dim=64, num_samples=64,
                       num_pi_trajs=4, num_elites=8, iterations=2, batch_size=32)
SMALL_SEED_STEPS = 1000
SIZES = {"lite": LITE_OVERRIDES, "small": SMALL_OVERRIDES}
# everything else (lr 3e-4, enc_lr_scale 0.3, rho 0.5, tau 0.01, coefficients 20/0.1/0.1,
# grad clip 20, dropout 0.01, entropy 1e-4, log_std range [-10, 2], discount heuristic) is
# upstream's config.yaml. seed_steps = max(1000, 5*episode_length) = 2500 is set by upstream's
# make_env.


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="pendulum-swingup")
    p.add_argument("--steps", type=int, default=4000, help="agent decisions (env steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--eval-every", type=int, default=1000)
    p.add_argument("--eval-episodes", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--sizes", choices=sorted(SIZES), default="lite",
                   help="lite: theory-spec G.5 TD-MPC2-lite; small: configs/po-mpc-small.toml "
                        "(the PO-MPC grid's sizes, 1000 seed steps unless --seed-steps)")
    p.add_argument("--src", default=os.environ.get("TDMPC2_SRC", "/tmp/tdmpc2"),
                   help="work tree of nicklashansen/tdmpc2 (see setup.sh)")
    p.add_argument("--max-wall-s", type=float, default=0.0,
                   help="stop at an episode boundary when the next episode (plus the eval at "
                        "its end, if due) is projected to end after this much wall time "
                        "(0 = off); the summary then says stopped_early. Checked only at "
                        "episode boundaries: pair it with --hard-wall-s for a strict cap")
    p.add_argument("--eval-untrained", action="store_true",
                   help="also evaluate while the agent has had no update yet (upstream does: "
                        "at step 0 and every eval step before seed_steps); off by default because "
                        "each such eval plans eval_episodes*500 decisions with an untrained model")
    p.add_argument("--seed-steps", type=int, default=None,
                   help="override upstream's seed_steps = max(1000, 5*episode_length) = 2500 "
                        "(smoke tests only)")
    p.add_argument("--hard-wall-s", type=float, default=0.0,
                   help="stop wherever the run is (also inside the pretraining burst or an "
                        "episode) once this much wall time has passed (0 = off); the summary "
                        "then says stopped_hard")
    p.add_argument("--compile", action="store_true",
                   help="upstream's torch.compile(mode='reduce-overhead') (off by default)")
    return p.parse_args()


def patched_copy(src):
    """Copy upstream's tdmpc2/ package to a scratch dir outside the repo and apply PATCHES."""
    up = os.path.join(src, "tdmpc2")
    if not os.path.isfile(os.path.join(up, "tdmpc2.py")):
        sys.exit(f"no TD-MPC2 source at {up}: run benchmarks/peers/tdmpc2/setup.sh first")
    dst = tempfile.mkdtemp(prefix="tdmpc2-cpu-")
    shutil.copytree(up, os.path.join(dst, "tdmpc2"))
    applied = []
    for rel, old, new, count, why in PATCHES:
        path = os.path.join(dst, "tdmpc2", rel)
        text = open(path).read()
        n = text.count(old)
        if n != count:
            sys.exit(f"patch for {rel} expected {count} match(es) of {old!r}, found {n}: "
                     f"upstream changed, review PATCHES")
        open(path, "w").write(text.replace(old, new))
        applied.append(dict(file=rel, old=old, new=new, why=why))
    return os.path.join(dst, "tdmpc2"), dst, applied


class Timer:
    """Wall time (perf_counter) and process CPU time (process_time) of the wrapped calls."""

    def __init__(self):
        self.n = 0
        self.s = 0.0
        self.cpu = 0.0

    def wrap(self, fn):
        def wrapped(*a, **k):
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                self.s += time.perf_counter() - t
                self.cpu += time.process_time() - c
                self.n += 1
        return wrapped

    def ms(self):
        return 1e3 * self.s / self.n if self.n else None

    def cpu_ms(self):
        return 1e3 * self.cpu / self.n if self.n else None


class StopTraining(Exception):
    pass


class CsvLogger:
    """Stands in for upstream's Logger (wandb / csv / video); same log(d, category) interface."""

    video = None

    def __init__(self, out, t0, eval_timer, max_wall_s, eval_every, eval_cost_guess):
        self.t0 = t0
        self.eval_timer = eval_timer
        self.max_wall_s = max_wall_s
        self.eval_every = eval_every
        self.eval_cost_guess = eval_cost_guess  # () -> seconds, before any eval was timed
        self.prev = (0.0, 0.0, 0)  # wall, eval seconds, step at the previous episode end
        self.last_eval_s = None
        self._eval_s_before = 0.0
        self.burst_s = lambda: 0.0  # set by main(): seconds of the pretraining burst
        self.seed_steps = 0
        self.eval_rows = []
        self.train_rows = []
        self.out = out

    def log(self, d, category):
        wall = time.perf_counter() - self.t0
        v = {k: (x.item() if hasattr(x, "item") else x) for k, x in d.items()}
        if category == "eval":
            if v.get("skipped"):
                print(f"[eval]  step {int(v['step']):>7}  skipped (no update yet)", flush=True)
                return
            row = dict(step=int(v["step"]), episode_return_mean=float(v["episode_reward"]),
                       wall_s=round(wall, 2),
                       train_wall_s=round(wall - self.eval_timer.s, 2),
                       eval_s=round(self.eval_timer.s, 2))
            self.last_eval_s = self.eval_timer.s - self._eval_s_before
            self.eval_rows.append(row)
            self._write("eval.csv", self.eval_rows)
            print(f"[eval]  step {row['step']:>7}  return {row['episode_return_mean']:8.2f}"
                  f"  wall {wall:7.1f}s", flush=True)
        elif category == "train":
            row = dict(step=int(v["step"]), episode=int(v["episode"]),
                       episode_return=float(v["episode_reward"]), wall_s=round(wall, 2))
            self.train_rows.append(row)
            self._write("train.csv", self.train_rows)
            print(f"[train] step {row['step']:>7}  return {row['episode_return']:8.2f}"
                  f"  wall {wall:7.1f}s", flush=True)
            self._eval_s_before = self.eval_timer.s
            # stop here if the next episode (and the eval at its end, if any) is projected to
            # end past --max-wall-s: projection = training time of the episode just finished
            pw, pe, ps = self.prev
            seg = (wall - pw) - (self.eval_timer.s - pe)
            burst = self.burst_s()
            if burst and ps <= self.seed_steps < row["step"]:
                seg -= burst  # the one-off pretraining burst fell in this episode
            nxt = row["step"] + (row["step"] - ps)
            if nxt % self.eval_every == 0:
                seg += self.last_eval_s if self.last_eval_s is not None else self.eval_cost_guess()
            self.prev = (wall, self.eval_timer.s, row["step"])
            if self.max_wall_s and wall + seg > self.max_wall_s:
                print(f"[stop]  projected {wall + seg:.0f}s > --max-wall-s {self.max_wall_s:.0f}s",
                      flush=True)
                raise StopTraining(row["step"])

    def _write(self, name, rows):
        with open(os.path.join(self.out, name), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)

    def finish(self, agent=None):
        pass


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    # threads must be fixed before torch starts its pools
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("MUJOCO_GL", "disable")  # no rendering (no video)
    os.environ["LAZY_LEGACY_OP"] = "0"              # as upstream's train.py
    os.environ["TORCHDYNAMO_INLINE_INBUILT_NN_MODULES"] = "1"

    pkg, _scratch, applied = patched_copy(args.src)
    sys.path.insert(0, pkg)
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.set_float32_matmul_precision("high")  # as upstream's train.py (no effect on CPU fp32)

    import hydra
    from omegaconf import OmegaConf
    from common import parser as tparser
    from common.seed import set_seed
    from common.buffer import Buffer
    from envs import make_env
    from tdmpc2 import TDMPC2
    from trainer.online_trainer import OnlineTrainer

    cfg = OmegaConf.load(os.path.join(pkg, "config.yaml"))
    cfg.pop("defaults", None)  # hydra launcher override; no hydra app here
    cfg.task = args.task
    cfg.steps = args.steps
    cfg.seed = args.seed
    cfg.eval_freq = args.eval_every
    cfg.eval_episodes = args.eval_episodes
    cfg.model_size = None  # use the explicit sizes below
    cfg.compile = bool(args.compile)
    cfg.save_video = False
    cfg.save_agent = False
    cfg.save_csv = False
    cfg.enable_wandb = False
    cfg.exp_name = f"tdmpc2-{args.sizes}"
    for k, v in SIZES[args.sizes].items():
        cfg[k] = v
    # parse_cfg asks hydra for the launch directory (only used for upstream's log dir)
    hydra.utils.get_original_cwd = lambda: os.path.abspath(args.out)
    cfg = tparser.parse_cfg(cfg)
    set_seed(cfg.seed)

    env = make_env(cfg)  # sets obs_shape, action_dim, episode_length, seed_steps
    if args.seed_steps is not None:
        cfg.seed_steps = args.seed_steps
    elif args.sizes == "small":
        cfg.seed_steps = SMALL_SEED_STEPS
    agent = TDMPC2(cfg)
    buffer = Buffer(cfg)
    # REPLAY: upstream sizes the storage min(buffer_size, steps) rows, but an episode stores 501
    # rows (the reset observation too), so a run of `steps` decisions writes steps*501/500 rows
    # and the oldest rows would be overwritten near the end. "Buffer = all data": make room.
    buffer._capacity = cfg.steps + cfg.steps // 500 + 1002

    t_act_train, t_act_eval, t_update = Timer(), Timer(), Timer()
    t_sample, t_env, t_eval = Timer(), Timer(), Timer()
    marks = {}
    act_orig = agent.act
    update_inner = t_update.wrap(agent.update)

    def act(obs, t0=False, eval_mode=False, task=None):
        tm = t_act_eval if eval_mode else t_act_train
        return tm.wrap(act_orig)(obs, t0=t0, eval_mode=eval_mode, task=task)

    def check_hard():
        if args.hard_wall_s and time.perf_counter() - t0 > args.hard_wall_s:
            raise StopTraining(trainer._step, "hard")

    def update(buf):
        check_hard()
        out = update_inner(buf)
        if t_update.n == cfg.seed_steps:  # last update of the pretraining burst
            marks["pretrain_end"] = (time.perf_counter(), t_eval.s, time.process_time(), t_eval.cpu)
        return out

    agent.act = act
    agent.update = update
    buffer.sample = t_sample.wrap(buffer.sample)
    env_step_orig = env.step

    t0, c0 = time.perf_counter(), time.process_time()
    logger = CsvLogger(args.out, t0, t_eval, args.max_wall_s, args.eval_every,
                       lambda: args.eval_episodes * 500 * (t_act_train.ms() or 100.0) / 1e3)
    logger.seed_steps = cfg.seed_steps

    def burst_s():
        if "pretrain_end" in marks and "seed_end" in seed_mark:
            return marks["pretrain_end"][0] - seed_mark["seed_end"][0]
        return 0.0
    logger.burst_s = burst_s
    trainer = OnlineTrainer(cfg=cfg, env=env, agent=agent, buffer=buffer, logger=logger)
    eval_orig = trainer.eval

    def eval_():
        if not args.eval_untrained and t_update.n == 0:
            nan = float("nan")
            return dict(episode_reward=nan, episode_success=nan, episode_length=nan, skipped=True)
        # env.step inside eval is timed by t_env too; keep train env time separate
        saved = (t_env.s, t_env.cpu, t_env.n)
        out = t_eval.wrap(eval_orig)()
        t_env.s, t_env.cpu, t_env.n = saved
        return out
    trainer.eval = eval_

    # env step number seed_steps is the last random one; right after it comes the burst of
    # seed_steps pretraining updates, then every step plans and updates once
    seed_mark = {}

    def env_step_marked(action):
        check_hard()
        if trainer._step == cfg.seed_steps and "seed_end" not in seed_mark:
            seed_mark["seed_end"] = (time.perf_counter(), t_eval.s, time.process_time(), t_eval.cpu)
        return env_step_orig(action)
    env.step = t_env.wrap(env_step_marked)

    load0 = os.getloadavg()
    stopped_early, stopped_hard = None, False
    try:
        trainer.train()
    except StopTraining as e:
        stopped_early = int(e.args[0])
        stopped_hard = len(e.args) > 1
    t_end, c_end = time.perf_counter(), time.process_time()
    load1 = os.getloadavg()

    wall = t_end - t0
    eval_s = t_eval.s
    # env steps (decisions) actually taken in training: upstream's loop runs steps 0..steps,
    # i.e. steps+1 of them; a stop at an episode boundary at step k has taken k
    train_steps = trainer._step
    res = dict(
        peer="nicklashansen/tdmpc2 (official TD-MPC2), run on CPU",
        upstream_commit=open(os.path.join(args.src, "COMMIT")).read().strip()
        if os.path.exists(os.path.join(args.src, "COMMIT")) else None,
        task=args.task, seed=args.seed, steps=args.steps, steps_done=train_steps,
        stopped_early=stopped_early, stopped_hard=stopped_hard, threads=args.threads, compile=bool(args.compile),
        eval_every=args.eval_every, eval_episodes=args.eval_episodes,
        size_preset=args.sizes,
        sizes={k: getattr(cfg, k) for k in LITE_OVERRIDES},
        other_cfg={k: getattr(cfg, k) for k in (
            "lr", "enc_lr_scale", "rho", "tau", "consistency_coef", "reward_coef", "value_coef",
            "grad_clip_norm", "dropout", "entropy_coef", "log_std_min", "log_std_max", "vmin",
            "vmax", "seed_steps", "episode_length", "action_dim", "obs_shape")},
        discount=float(agent.discount),
        action_repeat=2,
        replay_capacity_rows=buffer._capacity,
        utd=("1 update per env step after seed_steps, plus a burst of seed_steps updates at "
             "step seed_steps (upstream OnlineTrainer); total updates = steps - seed_steps + "
             "seed_steps = steps over a whole run"),
        num_updates=t_update.n,
        params=sum(p.numel() for p in agent.model.parameters() if p.requires_grad),
        wall_s=round(wall, 2), eval_s=round(eval_s, 2), cpu_s=round(c_end - c0, 2),
        load_avg_start=load0, load_avg_end=load1,
    )
    # *_excl_eval: wall clock; *_cpu: process CPU seconds instead of wall (less sensitive to
    # other load on a shared machine; with threads > 1 it adds up all threads)
    sps = {}
    sps["overall_excl_eval"] = train_steps / (wall - eval_s)
    sps["overall_incl_eval"] = train_steps / wall
    sps["overall_excl_eval_cpu"] = train_steps / ((c_end - c0) - t_eval.cpu)
    if "seed_end" in seed_mark:
        ts, ev, cs, evc = seed_mark["seed_end"]
        sps["seed_phase_excl_eval"] = cfg.seed_steps / ((ts - t0) - ev)
    if "pretrain_end" in marks:
        tp, ev, cp, evc = marks["pretrain_end"]
        n_upd = train_steps - (cfg.seed_steps + 1)  # steps after the burst: plan + 1 update
        dt = (t_end - tp) - (eval_s - ev)
        dc = (c_end - cp) - (t_eval.cpu - evc)
        res["update_phase_steps"] = n_upd
        res["update_phase_wall_s"] = round(dt, 2)
        if n_upd > 0 and dt > 0:
            sps["update_phase_excl_eval"] = n_upd / dt
            sps["update_phase_excl_eval_cpu"] = n_upd / dc
        if "seed_end" in seed_mark:
            ts, ev0, cs, evc0 = seed_mark["seed_end"]
            res["pretrain_burst_s"] = round((tp - ts) - (ev - ev0), 2)
            res["pretrain_burst_cpu_s"] = round((cp - cs) - (evc - evc0), 2)
    if "seed_end" in seed_mark and "pretrain_end" not in marks and t_update.n:
        # stopped inside the pretraining burst: its update rate so far
        ts, ev, cs, evc = seed_mark["seed_end"]
        res["burst_updates_done"] = t_update.n
        res["burst_updates_per_second"] = round(t_update.n / (t_end - ts), 3)
        res["burst_updates_per_cpu_second"] = round(t_update.n / (c_end - cs), 3)
    res["agent_steps_per_second"] = {k: round(v, 3) for k, v in sps.items()}
    res["timings_ms"] = dict(
        plan_train_per_decision=t_act_train.ms(), plan_train_calls=t_act_train.n,
        plan_eval_per_decision=t_act_eval.ms(), plan_eval_calls=t_act_eval.n,
        update=t_update.ms(), update_calls=t_update.n,
        buffer_sample_within_update=t_sample.ms(),
        env_step_train=t_env.ms(), env_step_train_calls=t_env.n,
        cpu_plan_train_per_decision=t_act_train.cpu_ms(),
        cpu_plan_eval_per_decision=t_act_eval.cpu_ms(),
        cpu_update=t_update.cpu_ms(), cpu_env_step_train=t_env.cpu_ms(),
    )
    res["eval"] = logger.eval_rows
    res["final_eval_return"] = logger.eval_rows[-1]["episode_return_mean"] if logger.eval_rows else None
    res["final_eval_step"] = logger.eval_rows[-1]["step"] if logger.eval_rows else None
    import tensordict
    import torchrl
    import mujoco
    import numpy
    from importlib.metadata import version
    res["versions"] = dict(python=platform.python_version(), torch=torch.__version__,
                           tensordict=tensordict.__version__, torchrl=torchrl.__version__,
                           mujoco=mujoco.__version__, dm_control=version("dm-control"),
                           numpy=numpy.__version__, gymnasium=version("gymnasium"))
    res["torch_threads"] = torch.get_num_threads()
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
        res["cpu"] = f"{cpu[0]} ({len(cpu)} logical)"
    except OSError:
        pass
    res["patches"] = applied
    res["command"] = " ".join([os.path.basename(sys.executable)] + sys.argv)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(res, f, indent=2, default=str)
    shutil.rmtree(os.path.dirname(pkg), ignore_errors=True)
    print(json.dumps({k: res[k] for k in ("agent_steps_per_second", "timings_ms",
                                           "final_eval_return", "wall_s")}, indent=2, default=str))


if __name__ == "__main__":
    main()
