"""Training runs: a real model trained by each scheme's decoded gradients (issue 13).

``config`` (the ``training:`` section and its checks), ``datasets`` (real and synthetic data in
chunks), ``models`` (least squares, logistic; vectorized over parameter vectors), ``loop``
(``train``: the PS's steps replayed from the engines' decode weights), ``target`` (time to a
target loss), ``plots`` (loss against simulated time), ``bench`` (cost against a bare loop).
Nothing here imports the engines or the runner: the runner calls ``loop.train``.
"""
