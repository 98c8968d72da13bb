"""Keras 3 on its JAX backend, the peer of `jdl bench mlp`: the lecture's Dense 10-2-1.

`python -m jdl.mlp.peer_keras EPOCHS STEPS_PER_EPOCH STEPS_PER_EXECUTION` (see jdl.bench.keras_fit).
"""

import os

os.environ.setdefault('KERAS_BACKEND', 'jax')

from jdl.bench import keras_fit  # noqa: E402


def build():
  import keras

  L = keras.layers
  from jdl.data.synthetic import regression
  from jdl.mlp.bench import FEATURES, ROWS

  x, y = regression(ROWS, FEATURES)
  model = keras.Sequential(
    [
      keras.Input((FEATURES,)),
      L.Dense(10, activation='relu'),
      L.Dense(2, activation='relu'),
      L.Dense(1),
    ]
  )
  return model, x, y, 32, keras.optimizers.SGD(0.01), 'mse'


if __name__ == '__main__':
  keras_fit.main(build)
