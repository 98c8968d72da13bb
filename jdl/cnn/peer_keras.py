"""Keras 3 on its JAX backend, the peer of `jdl bench cnn`: the Keras example's simple convnet.

`python -m jdl.cnn.peer_keras EPOCHS STEPS_PER_EPOCH STEPS_PER_EXECUTION` (see jdl.bench.keras_fit).
"""

import os

os.environ.setdefault('KERAS_BACKEND', 'jax')

from jdl.bench import keras_fit  # noqa: E402


def build():
  import keras

  L = keras.layers
  from jdl.data import fashion_mnist

  x, y = fashion_mnist.arrays('train')
  model = keras.Sequential(
    [
      keras.Input((28, 28, 1)),
      L.Rescaling(1 / 255),
      L.Conv2D(32, 3, activation='relu'),
      L.MaxPooling2D(2),
      L.Conv2D(64, 3, activation='relu'),
      L.MaxPooling2D(2),
      L.Flatten(),
      L.Dropout(0.5),
      L.Dense(10),
    ]
  )
  loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  return model, x, y, 128, keras.optimizers.Adam(1e-3), loss


if __name__ == '__main__':
  keras_fit.main(build)
