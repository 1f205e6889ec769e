"""Training runs: a real model trained by each scheme's decoded gradients (issue 13).

``config`` (the ``training:`` section and its checks), ``datasets`` (real and synthetic data in
chunks), ``models`` (least squares, logistic; vectorized over parameter vectors), ``trainer``
(the engines' gradient source of a training run: what runs use), ``loop`` (a vectorized replay
of decode weights, not used by runs: only the benchmark's alternative), ``target`` (time to a
target loss), ``plots`` (loss against simulated time), ``bench`` (cost against a bare loop).
The engines reach the trainer through ``engine/numbers.source_of``; nothing here imports them.
"""
