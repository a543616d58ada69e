"""The Controller and the built-in tasks through the bindings: numpy round trips, config,
errors, determinism, every task in closed loop."""

import threading
import time

import numpy as np
import pytest

import mppi
from conftest import pendulum_cost, pendulum_dynamics


def small(**kw):
    settings = {"samples": 64, "horizon": 10, **kw}
    return mppi.Controller(pendulum_dynamics, pendulum_cost, state_dim=2, control_dim=1, **settings)


# ------------------------------------------------------------------ numpy round trips


def test_act_plan_samples_round_trip():
    ctrl = mppi.Controller.for_task("pendulum", samples=128, horizon=20)
    u = ctrl.act(np.array([np.pi, 0.0]))
    assert u.dtype == np.float64 and u.shape == (1,)
    assert ctrl.plan.shape == (20, 1) and ctrl.plan.dtype == np.float64
    assert u[0] == ctrl.plan[0, 0]
    assert ctrl.samples.shape == (128, 20, 1)
    assert ctrl.costs.shape == (128,) and ctrl.weights.shape == (128,)
    assert abs(ctrl.weights.sum() - 1.0) < 1e-12
    # a list works as a state too, and a plan set is the plan read back
    ctrl.act([np.pi, 0.0])
    new_plan = np.linspace(-1.0, 1.0, 20).reshape(20, 1)
    ctrl.set_plan(new_plan)
    np.testing.assert_array_equal(ctrl.plan, new_plan)
    ctrl.set_plan(new_plan.ravel())
    np.testing.assert_array_equal(ctrl.plan, new_plan)


def test_non_contiguous_state_is_read_in_order():
    a = np.array([[np.pi, 9.0], [0.0, 9.0]]).T[0]  # a strided view: (pi, 0)
    assert not a.flags["C_CONTIGUOUS"]
    c1, c2 = small(), small()
    np.testing.assert_array_equal(c1.act(a), c2.act(np.array([np.pi, 0.0])))


def test_report_is_a_dict_with_every_iteration():
    ctrl = mppi.Controller.for_task("pendulum", iterations=3, samples=64)
    ctrl.act(np.array([np.pi, 0.0]))
    report = ctrl.report
    assert report["step"] == 0 and report["status"] == "max_iterations"
    assert len(report["iterations"]) == 3
    first = report["iterations"][0]
    assert 1.0 <= first["ess"] <= 64.0 and first["nonfinite"] == 0
    assert report["planning_time"] > 0


def test_config_is_the_third_positional_argument():
    ctrl = mppi.Controller(pendulum_dynamics, pendulum_cost, {"samples": 48}, state_dim=2, control_dim=1)
    assert ctrl.config["samples"] == 48


def test_config_dict_round_trips():
    ctrl = mppi.Controller.for_task("cartpole", samples=333, proposal={"kind": "gaussian_diag"})
    cfg = ctrl.config
    assert cfg["samples"] == 333 and cfg["proposal"]["kind"] == "gaussian_diag"
    again = mppi.Controller.for_task("cartpole", config=cfg)
    assert again.config == cfg


def test_every_seed_and_numpy_values():
    for seed in [0, 2**63 - 1, 2**63, 2**64 - 1]:
        ctrl = mppi.Controller.for_task("pendulum", seed=seed, samples=16)
        assert mppi.Controller.for_task("pendulum", config=ctrl.config).config == ctrl.config
    for seed in [-1, 2**64]:
        with pytest.raises(ValueError, match="seed"):
            mppi.Controller.for_task("pendulum", seed=seed)
    ctrl = mppi.Controller.for_task("pendulum", samples=np.int64(64), proposal={"noise_sigma": np.array([0.5])})
    assert ctrl.config["samples"] == 64 and ctrl.config["proposal"]["noise_sigma"] == [0.5]


def test_dotted_keys_sections_files_and_presets(tmp_path):
    a = small(config={"proposal.noise_sigma": 0.3})
    b = small(config={"proposal": {"noise_sigma": 0.3}})
    assert a.config == b.config and a.config["proposal"]["noise_sigma"] == [0.3]
    path = tmp_path / "run.toml"
    path.write_text("samples = 77\n[proposal]\nnoise_sigma = 0.7\n")
    c = mppi.Controller.for_task("pendulum", config=str(path))
    assert c.config["samples"] == 77 and c.config["proposal"]["noise_sigma"] == [0.7]
    assert mppi.Controller.for_task("pendulum", config=path).config["samples"] == 77
    d = mppi.Controller.for_task("pendulum", preset="dial", samples=100)
    assert d.config["schedule"]["kind"] == "dial" and d.config["samples"] == 100
    assert [name for name, _ in mppi.presets()] == ["dial", "mbd", "ve"]
    assert any(k == "weighting.temperature.kind" for k, _ in mppi.config_keys())


def test_every_family_schedule_and_temperature_from_python():
    families = {
        "gaussian": {},
        "gaussian_diag": {},
        "gaussian_full": {},
        "colored": {},
        "spline": {},
        "beta": {},
        "mixture": {},
    }
    for kind, extra in families.items():
        ctrl = mppi.Controller.for_task("pendulum", samples=64, proposal={"kind": kind, **extra})
        assert np.isfinite(ctrl.act([np.pi, 0.0])).all(), kind
    ctrl = mppi.Controller.for_task("cartpole_discrete", samples=64)
    assert ctrl.config["proposal"]["kind"] == "categorical"
    assert np.isfinite(ctrl.act(mppi.Task("cartpole_discrete").initial_state)).all()
    for schedule in ["constant", "dial", "dial_exp", "ve", "vp"]:
        ctrl = mppi.Controller.for_task("pendulum", samples=64, iterations=3, schedule={"kind": schedule})
        assert np.isfinite(ctrl.act([np.pi, 0.0])).all(), schedule
    for temperature in [
        {"kind": "fixed", "lambda": 0.5},
        {"kind": "std_normalized", "scale": 0.1},
        {"kind": "ess_target", "target": 0.1},
    ]:
        ctrl = mppi.Controller.for_task("pendulum", samples=64, weighting={"temperature": temperature})
        assert np.isfinite(ctrl.act([np.pi, 0.0])).all(), temperature


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"sampels": 10}, ValueError, ["sampels", "did you mean `samples`"]),
        ({"samples": "many"}, TypeError, ["samples"]),
        ({"samples": 0}, ValueError, ["samples"]),
        ({"proposal": {"kind": "gausian"}}, ValueError, ["proposal.kind"]),
        ({"weighting": {"temperature": {"kind": "fixed", "lambda": -1.0}}}, ValueError, ["lambda"]),
        ({"proposal": {"noise_sigma": [1.0, 2.0, 3.0]}}, ValueError, ["noise_sigma"]),
        ({"samples": None}, TypeError, ["samples", "None"]),
        ({"samples": object()}, TypeError, ["samples"]),
        ({"preset": "dail"}, ValueError, ["dail", "dial, mbd, ve"]),
        ({"config": 3}, TypeError, ["config must be a dict"]),
        ({"config": "/no/such/file.toml"}, ValueError, ["/no/such/file.toml"]),
        ({"config": {1: 2}}, TypeError, ["config keys are strings"]),
        ({"memory_limit_mb": 1, "samples": 10_000_000}, ValueError, ["memory"]),
    ],
)
def test_config_errors_name_the_key(kwargs, error, words):
    with pytest.raises(error) as info:
        mppi.Controller.for_task("pendulum", **kwargs)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_unknown_task_lists_the_tasks():
    with pytest.raises(ValueError, match="pendulum, cartpole"):
        mppi.Controller.for_task("pendulm")
    with pytest.raises(ValueError, match="pendulum, cartpole"):
        mppi.Task("pendulm")


def test_state_errors():
    ctrl = small()
    with pytest.raises(ValueError, match="2 entries, got 3"):
        ctrl.act(np.zeros(3))
    with pytest.raises(ValueError, match="1-D"):
        ctrl.act(np.zeros((2, 1)))
    with pytest.raises(TypeError, match="float32"):
        ctrl.act(np.zeros(2, dtype=np.float32))
    with pytest.raises(TypeError, match="int64"):
        ctrl.act(np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="non-finite entry at index 1"):
        ctrl.act(np.array([0.0, np.nan]))
    with pytest.raises(TypeError, match="str"):
        ctrl.act("state")
    with pytest.raises(ValueError, match="plan must have 10 entries"):
        ctrl.set_plan(np.zeros(3))
    # the controller still works after every error
    assert np.isfinite(ctrl.act(np.zeros(2))).all()


def test_model_errors():
    with pytest.raises(TypeError, match="dynamics must be callable"):
        mppi.Controller(3, pendulum_cost, state_dim=2, control_dim=1)
    with pytest.raises(ValueError, match="at least 1"):
        mppi.Controller(pendulum_dynamics, pendulum_cost, state_dim=0, control_dim=1)
    with pytest.raises(ValueError, match="at least 1"):
        mppi.Controller(pendulum_dynamics, pendulum_cost, state_dim=2, control_dim=-1)
    with pytest.raises(ValueError, match="precision"):
        mppi.Controller(pendulum_dynamics, pendulum_cost, state_dim=2, control_dim=1, precision="f32")
    with pytest.raises(ValueError, match="steps"):
        mppi.run_episode("pendulum", steps=-3)
    with pytest.raises(ValueError, match="seed"):
        mppi.run_episode("pendulum", seed=-3)
    with pytest.raises(ValueError, match="threads"):
        mppi.run_episode("pendulum", threads=10_000)


class Boom(Exception):
    pass


def test_a_callback_that_raises_is_reraised_unchanged():
    def cost(x, u, t):
        if t == 3:
            raise Boom("cost failed at t = 3")
        return pendulum_cost(x, u, t)

    ctrl = mppi.Controller(pendulum_dynamics, cost, state_dim=2, control_dim=1, samples=32, horizon=5)
    with pytest.raises(Boom, match="t = 3"):
        ctrl.act([0.0, 0.0])


@pytest.mark.parametrize(
    "dynamics, cost, error, words",
    [
        (pendulum_dynamics, lambda x, u, t: np.zeros(3), ValueError, ["cost(x, u, t)", "(64,)", "(3,)"]),
        (pendulum_dynamics, lambda x, u, t: np.zeros((64, 1)), ValueError, ["(64, 1)"]),
        (pendulum_dynamics, lambda x, u, t: np.zeros(64, dtype=np.float32), TypeError, ["float32"]),
        (pendulum_dynamics, lambda x, u, t: [0.0] * 64, TypeError, ["list"]),
        (lambda x, u: x[:, :1], pendulum_cost, ValueError, ["dynamics(x, u)", "(64, 2)", "(64, 1)"]),
        (lambda x, u: None, pendulum_cost, TypeError, ["dynamics(x, u)", "NoneType"]),
        (lambda x, u: x.astype(np.float32), pendulum_cost, TypeError, ["float32"]),
    ],
)
def test_callbacks_returning_the_wrong_thing(dynamics, cost, error, words):
    ctrl = mppi.Controller(dynamics, cost, state_dim=2, control_dim=1, samples=64, horizon=5)
    with pytest.raises(error) as info:
        ctrl.act([0.0, 0.0])
    for word in words:
        assert word in str(info.value), str(info.value)


def test_nan_costs_get_zero_weight_and_are_counted():
    def cost(x, u, t):
        c = pendulum_cost(x, u, t)
        c[::2] = np.nan  # every other sample
        return c

    ctrl = mppi.Controller(pendulum_dynamics, cost, state_dim=2, control_dim=1, samples=64, horizon=5)
    ctrl.act([np.pi, 0.0])
    it = ctrl.report["iterations"][0]
    assert it["nonfinite"] == 32
    assert (ctrl.weights[::2] == 0).all() and ctrl.weights[1::2].sum() == pytest.approx(1.0)

    def nan_dynamics(x, u):
        return np.full_like(x, np.nan)

    ctrl = mppi.Controller(nan_dynamics, pendulum_cost, state_dim=2, control_dim=1, samples=16, horizon=3)
    u = ctrl.act([0.0, 0.0])  # every cost is NaN: the plan is kept, not garbage
    assert np.isfinite(u).all()
    assert ctrl.report["iterations"][0]["kept_plan"] is True


def test_callbacks_are_batched_once_per_step():
    calls = []

    def cost(x, u, t):
        calls.append((x.shape, u.shape, t))
        return pendulum_cost(x, u, t)

    ctrl = mppi.Controller(pendulum_dynamics, cost, state_dim=2, control_dim=1, samples=100, horizon=7)
    ctrl.act([np.pi, 0.0])
    assert calls == [((100, 2), (100, 1), t) for t in range(7)]


def test_a_python_model_matches_the_built_in_one():
    # the same model through Python callbacks and in Rust: the same first control
    task = mppi.Task("double_integrator")
    settings = dict(samples=256, seed=5)
    built_in = mppi.Controller.for_task("double_integrator", **settings)
    cfg = built_in.config
    python = mppi.Controller(
        task.dynamics,
        task.running_cost,
        terminal_cost=task.terminal_cost,
        state_dim=task.state_dim,
        control_dim=task.control_dim,
        config=cfg,
    )
    x0 = task.initial_state
    np.testing.assert_allclose(python.act(x0), built_in.act(x0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(python.costs, built_in.costs, rtol=1e-9)


def test_terminal_cost_is_added_once():
    def terminal(x):
        return np.full(x.shape[0], 1000.0)

    plain = small(seed=3, discount=0.9)
    with_terminal = mppi.Controller(
        pendulum_dynamics, pendulum_cost, terminal_cost=terminal, state_dim=2, control_dim=1,
        samples=64, horizon=10, seed=3, discount=0.9,
    )
    plain.act([1.0, 0.0])
    with_terminal.act([1.0, 0.0])
    np.testing.assert_allclose(with_terminal.costs - plain.costs, 1000.0 * 0.9**10, rtol=1e-12)


def test_a_busy_controller_raises_instead_of_hanging():
    holder = {}

    def cost(x, u, t):
        if "inner" not in holder:
            holder["inner"] = True
            with pytest.raises(RuntimeError, match="in use"):
                holder["ctrl"].act([0.0, 0.0])
        return pendulum_cost(x, u, t)

    holder["ctrl"] = mppi.Controller(pendulum_dynamics, cost, state_dim=2, control_dim=1, samples=8, horizon=2)
    holder["ctrl"].act([0.0, 0.0])


# ------------------------------------------------------------------ determinism


def test_same_seed_same_episode_on_any_thread_count():
    one = mppi.run_episode("double_integrator", steps=40, seed=9, threads=1)
    two = mppi.run_episode("double_integrator", steps=40, seed=9, threads=2)
    np.testing.assert_array_equal(one["states"], two["states"])
    np.testing.assert_array_equal(one["controls"], two["controls"])
    assert one["total_cost"] == two["total_cost"]


def test_python_threads_give_the_serial_result():
    def episode(seed):
        return mppi.run_episode("pendulum", steps=60, seed=seed)["controls"]

    serial = [episode(s) for s in range(4)]
    results = [None] * 4

    def work(i):
        results[i] = episode(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)


def test_the_gil_is_released_while_rust_plans():
    count = [0]
    running = threading.Event()
    done = threading.Event()

    def counter():
        running.set()
        while not done.is_set():
            count[0] += 1

    t = threading.Thread(target=counter)
    t.start()
    running.wait()
    before = count[0]
    start = time.perf_counter()
    mppi.run_episode("pendulum", steps=300, samples=2000)
    elapsed = time.perf_counter() - start
    during = count[0] - before
    done.set()
    t.join()
    # with the GIL held for the whole episode the counter could not run at all
    assert during > 1000 * elapsed, (during, elapsed)


# ------------------------------------------------------------------ tasks


@pytest.mark.parametrize("name", mppi.tasks())
def test_every_built_in_task_succeeds_through_the_bindings(name):
    result = mppi.run_episode(name, seed=0)
    assert result["success"], f"{name}: {result['message']}"
    task = mppi.Task(name)
    assert result["states"].shape == (task.default_steps + 1, task.state_dim)
    assert result["controls"].shape == (task.default_steps, task.control_dim)
    # the task's own judge agrees with the episode's verdict
    assert task.judge(result["states"], result["controls"])[0]
    assert result["total_cost"] == pytest.approx(result["stage_costs"].sum(), rel=1e-12)


def test_run_episode_matches_a_controller_loop():
    task = mppi.Task("pendulum")
    ctrl = mppi.Controller.for_task("pendulum", seed=4)
    x = task.initial_state
    total = 0.0
    for _ in range(50):
        u = ctrl.act(x)
        total += task.stage_cost(x, u)
        x = task.plant_step(x, u)
    assert total == mppi.run_episode("pendulum", steps=50, seed=4)["total_cost"]


def test_task_model_batches():
    task = mppi.Task("unicycle")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, task.state_dim))
    u = rng.normal(size=(5, task.control_dim))
    nxt = task.dynamics(x, u)
    assert nxt.shape == (5, task.state_dim)
    np.testing.assert_array_equal(nxt[2], task.dynamics(x[2], u[2]))
    assert task.running_cost(x, u, 3).shape == (5,)
    with pytest.raises(ValueError, match="same number of rows"):
        task.dynamics(x, u[:3])
    with pytest.raises(ValueError, match=r"\(K, 4\)"):
        task.dynamics(x[:, :2], u)


def test_ctrl_c_stops_a_long_episode():
    import subprocess
    import sys

    code = (
        "import os, signal, threading, time, mppi\n"
        # a process started in the background (`cmd &` without job control) inherits SIGINT
        # ignored, and Python then installs no KeyboardInterrupt handler
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
        "start = time.perf_counter()\n"
        "try:\n"
        "    mppi.run_episode('pendulum', steps=10**8)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted after', time.perf_counter() - start)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "interrupted after" in done.stdout, done.stdout + done.stderr
    assert float(done.stdout.split()[-1]) < 5.0


def pendulum_rollout(x0, plans):
    """The pendulum model rolled out over whole plans: x0 (2,), plans (K, T, 1) -> (K,)."""
    k, horizon, _ = plans.shape
    x = np.broadcast_to(x0, (k, 2)).copy()
    total = np.zeros(k)
    for t in range(horizon):
        u = plans[:, t, :]
        total += pendulum_cost(x, u, t)
        x = pendulum_dynamics(x, u)
    return total


def test_a_whole_plan_rollout_is_called_once_per_iteration():
    calls = []

    def rollout(x0, plans):
        calls.append((x0.shape, plans.shape))
        return pendulum_rollout(x0, plans)

    settings = dict(samples=100, horizon=12, iterations=3, seed=8)
    ctrl = mppi.Controller.from_rollout(rollout, state_dim=2, control_dim=1, **settings)
    steps = small(**settings)
    u = ctrl.act([np.pi, 0.0])
    assert calls == [((2,), (100, 12, 1))] * 3
    # the same model as per-step callbacks: the same costs and the same control
    np.testing.assert_array_equal(u, steps.act([np.pi, 0.0]))
    np.testing.assert_array_equal(ctrl.costs, steps.costs)


def test_a_whole_plan_rollout_that_misbehaves():
    with pytest.raises(TypeError, match="rollout must be callable"):
        mppi.Controller.from_rollout(None, state_dim=2, control_dim=1)
    ctrl = mppi.Controller.from_rollout(lambda x0, U: np.zeros(5), state_dim=2, control_dim=1, samples=16)
    with pytest.raises(ValueError, match=r"rollout\(x0, U\) must return one cost per sample, shape \(16,\)"):
        ctrl.act([0.0, 0.0])

    def boom(x0, U):
        raise Boom("rollout failed")

    with pytest.raises(Boom):
        mppi.Controller.from_rollout(boom, state_dim=2, control_dim=1).act([0.0, 0.0])
    nan = mppi.Controller.from_rollout(lambda x0, U: np.full(U.shape[0], np.nan), state_dim=2, control_dim=1, samples=16)
    assert np.isfinite(nan.act([0.0, 0.0])).all() and nan.report["iterations"][0]["kept_plan"]
