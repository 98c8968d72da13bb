"""The peer of `jdl bench mlp`: the same MLP in Keras 3 on its JAX backend, timed per epoch.

Run as `python -m jdl.bench.keras_mlp ROWS FEATURES EPOCHS STEPS_PER_EXECUTION`; prints one JSON
line with the seconds of each epoch.
"""

import json
import os
import sys
import time

os.environ.setdefault('KERAS_BACKEND', 'jax')


def main() -> None:
  rows, features, epochs, steps_per_execution = map(int, sys.argv[1:5])
  import keras

  from jdl.data.synthetic import regression
  x, y = regression(rows, features)
  model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(10, activation='relu'),
                            keras.layers.Dense(2, activation='relu'), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.SGD(0.01), loss='mse', jit_compile=True,
                steps_per_execution=steps_per_execution)

  times = []

  class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      self.t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      times.append(time.perf_counter() - self.t)

  history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[Timer()])
  print(json.dumps({'epoch_seconds': times, 'loss': history.history['loss'],
                    'keras': keras.__version__}))


if __name__ == '__main__':
  main()
