"""Episodes and wall time to solve CartPole-v1 with PolicyGradientTrainer.fit_env.

Solved: the mean return of the last 100 episodes reaches 475. Setup as in examples/cartpole.py:
MLP 4-32-2 (tanh), 8 sync vector envs (8 episodes per update), Adam 0.03, gamma 0.99,
advantages normalised per update (baseline="group_norm").

Run: python benchmarks/gym_cartpole.py [--seeds N] [--out DIR]
Writes DIR/gym_cartpole.csv and DIR/gym_cartpole.png (learning curves).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from _common import write_csv  # noqa: E402

from rlmetric import PolicyGradientTrainer  # noqa: E402


def solve(seed: int, max_episodes: int = 2000):
    keras.utils.set_random_seed(seed)
    env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")
    net = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(2)]
    )
    trainer = PolicyGradientTrainer(net, reward=None, policy="categorical")
    trainer.compile(optimizer=keras.optimizers.Adam(0.03))
    start = time.perf_counter()
    history = trainer.fit_env(
        env,
        episodes=max_episodes,
        gamma=0.99,
        baseline="group_norm",
        target_return=475.0,
        seed=seed,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    returns = history.episode_returns
    solved = len(returns) >= 100 and np.mean(returns[-100:]) >= 475.0
    return returns, seconds, solved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for seed in range(args.seeds):
        returns, seconds, solved = solve(seed)
        rows.append({"seed": seed, "episodes": len(returns), "seconds": seconds, "solved": solved})
        curves.append(returns)
        print(
            f"seed {seed}: {'solved' if solved else 'NOT solved'} after {len(returns)} episodes, "
            f"{seconds:.1f} s",
            flush=True,
        )
    episodes = [r["episodes"] for r in rows]
    seconds = [r["seconds"] for r in rows]
    print(
        f"\nmedian episodes to solve: {np.median(episodes):.0f} (min {min(episodes)}, "
        f"max {max(episodes)}); median wall time {np.median(seconds):.1f} s"
    )
    write_csv(out / "gym_cartpole.csv", rows)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for seed, returns in enumerate(curves):
        window = np.convolve(returns, np.ones(20) / 20, mode="valid")
        ax.plot(returns, alpha=0.25, color=f"C{seed}")
        ax.plot(np.arange(19, len(returns)), window, color=f"C{seed}", label=f"seed {seed}")
    ax.axhline(475, color="k", linestyle="--", linewidth=1)
    ax.set(xlabel="episode", ylabel="return", title="CartPole-v1, fit_env (20-episode mean)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "gym_cartpole.png", dpi=100)
    print(f"wrote {out / 'gym_cartpole.csv'}, {out / 'gym_cartpole.png'}")


if __name__ == "__main__":
    main()
