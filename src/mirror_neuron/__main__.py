"""``python -m mirror_neuron`` runs the ``mn`` command line."""

from __future__ import annotations

from .cli import run

if __name__ == "__main__":
    run()
