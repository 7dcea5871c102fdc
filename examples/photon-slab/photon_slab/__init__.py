"""tessera-photon-slab: the ``photon.slab`` kernel (``photon_slab.kernel:KERNEL``), registered
under the entry-point group ``tessera.kernels``."""

__version__ = "1.0.0"
