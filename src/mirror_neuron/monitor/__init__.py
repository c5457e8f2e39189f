"""Live views of jobs: what a monitor needs, from a local store or from an ``mn serve``.

:class:`~.source.Source` is the one interface both monitors (``mn job watch`` and the
terminal UI ``mn monitor``) read and control jobs through: :class:`~.source.LocalSource`
over a :class:`~mirror_neuron.runtime.Runtime` of the local store, or
:class:`~.source.RemoteSource` over a server's REST API and event stream.
:class:`~.state.JobView` folds a job's updates into what a screen shows.
"""

from __future__ import annotations

from ..runtime import Update
from .source import LocalSource, RemoteSource, Source, open_source
from .state import JobView

__all__ = ["JobView", "LocalSource", "RemoteSource", "Source", "Update", "open_source"]
