#!/usr/bin/env python3
"""The article's Keras program, timed: training images/s at batch 64.

For comparison with `actlab bench` on the same machine in the same sitting:
    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu
    /tmp/tf/bin/python scripts/keras-bench.py [STEPS]
The network, optimizer and batch size are the article's (see
../shared/seed/article-en.md); the images are synthetic, since speed does not
depend on the pixels. Like `actlab bench`, it reports the best of three
rounds of STEPS training steps, after warm-up.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
from tensorflow.keras import layers, models

g_softplus_2 = 2 * tf.nn.softplus(tf.constant(0.0))


def softplus_linear(x):
    return tf.where(x <= 0, 2 * tf.nn.softplus(x), x + g_softplus_2)


def model_with(act):
    return models.Sequential([
        layers.Input((32, 32, 3)),
        layers.Conv2D(32, (3, 3), activation=act, padding="same"),
        layers.Conv2D(32, (3, 3), activation=act),
        layers.MaxPooling2D(2, 2),
        layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), activation=act, padding="same"),
        layers.Conv2D(64, (3, 3), activation=act),
        layers.MaxPooling2D(2, 2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512, activation=act),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def images_per_second(act, steps):
    rng = np.random.default_rng(1)
    x = rng.random((steps * 64, 32, 32, 3), dtype=np.float32)
    y = tf.keras.utils.to_categorical(rng.integers(0, 10, steps * 64), 10)
    m = model_with(act)
    m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    m.fit(x[: 64 * 5], y[: 64 * 5], batch_size=64, epochs=1, verbose=0)  # warm-up (graph tracing)
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        m.fit(x, y, batch_size=64, epochs=1, verbose=0)
        best = max(best, steps * 64 / (time.perf_counter() - t))
    return best


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    print(f"Keras (TensorFlow {tf.__version__}), article CNN, batch 64, {steps} steps, {os.cpu_count()} CPUs")
    for name, act in [("relu", "relu"), ("softplus_linear", softplus_linear)]:
        print(f"{name:<20} {images_per_second(act, steps):>8.0f} images/s")
