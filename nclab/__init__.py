"""nclab — see and check the geometry deep nets learn. Modules: labels, frames, metrics, convex, ufm, losses, data,
nets, one per paper (seli, cssvm, scl, prototypes, ntp, darex, mcl), plots, apps, claims.

``nclab.configure_threads()`` sets torch's thread count to the CPUs this process may use (CPU affinity and cgroup
quota; $OMP_NUM_THREADS / $NCLAB_THREADS respected); nclab's torch modules apply it once on import."""

from nclab import _lazy_iri
from nclab._threads import available_cpus, configure_threads, default_threads

_lazy_iri.install()  # plotly → nbformat → jsonschema would compile IRI grammars it never uses here (1–4 s)

__all__ = ["available_cpus", "configure_threads", "default_threads"]
