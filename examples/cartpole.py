"""Solve CartPole-v1 with episodic REINFORCE (mean return >= 475 over 100 consecutive episodes).

Run: python examples/cartpole.py
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from rlmetric import PolicyGradientTrainer  # noqa: E402

keras.utils.set_random_seed(0)
env = gym.make_vec("CartPole-v1", num_envs=8, vectorization_mode="sync")  # 8 episodes per update
policy_net = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(2)]
)
trainer = PolicyGradientTrainer(policy_net, reward=None, policy="categorical")
trainer.compile(optimizer=keras.optimizers.Adam(0.03))
history = trainer.fit_env(
    env, episodes=2000, gamma=0.99, baseline="group_norm", target_return=475.0, seed=0, verbose=2
)
returns = history.episode_returns
print(
    f"{len(returns)} episodes; mean return of the last 100: {np.mean(returns[-100:]):.1f} "
    f"({'solved' if np.mean(returns[-100:]) >= 475 else 'not solved'})"
)
