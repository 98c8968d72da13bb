"""Keras 3 on its JAX backend, the peer of `jdl bench mlp` and `jdl bench cnn`, timed per epoch.

Run as `python -m jdl.bench.keras_peer MODEL EPOCHS STEPS_PER_EPOCH STEPS_PER_EXECUTION`
(MODEL: mlp or cnn); prints one JSON line with the seconds of each epoch. Run in its own process
so that its JAX state and threads do not mix with jdl's.
"""

import json
import os
import sys
import time

os.environ.setdefault('KERAS_BACKEND', 'jax')


def build(name: str):
  import keras

  L = keras.layers
  if name == 'mlp':  # the lecture's Dense 10-2-1
    from jdl.bench.mlp import FEATURES, ROWS
    from jdl.data.synthetic import regression

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
  if name == 'cnn':  # the Keras example's simple convnet
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
  raise SystemExit(f'unknown model {name}')


def main() -> None:
  name = sys.argv[1]
  epochs, steps_per_epoch, steps_per_execution = map(int, sys.argv[2:5])
  import keras

  model, x, y, batch, optimizer, loss = build(name)
  model.compile(
    optimizer=optimizer, loss=loss, jit_compile=True, steps_per_execution=steps_per_execution
  )
  times = []

  class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      times.append(time.perf_counter() - self.t)

  history = model.fit(
    x,
    y,
    batch_size=batch,
    epochs=epochs,
    verbose=0,
    callbacks=[Timer()],
    steps_per_epoch=steps_per_epoch or None,
  )
  print(
    json.dumps(
      {'epoch_seconds': times, 'loss': history.history['loss'], 'keras': keras.__version__}
    )
  )


if __name__ == '__main__':
  main()
