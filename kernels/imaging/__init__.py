"""Imaging kernels: tile transcoding (decode, resample, convert, encode).

``imaging.pyramid`` (:mod:`tessera.kernels.imaging.pyramid`) cuts one large image into an OME-Zarr
multiscale image and optional Deep Zoom tiles. Its arithmetic is
:mod:`tessera.kernels.imaging.downsample` (2x2 area mean, Numba);
:mod:`tessera.kernels.imaging.tiles` is the tile-grid arithmetic,
:mod:`tessera.kernels.imaging.source` reads regions of TIFF, PNG, JPEG and Zarr inputs
(:mod:`~tessera.kernels.imaging.source_tiff`, :mod:`~tessera.kernels.imaging.source_zarr`;
OME-XML metadata: :mod:`~tessera.kernels.imaging.omexml`),
:mod:`tessera.kernels.imaging.ome` and :mod:`tessera.kernels.imaging.dzi` write the two output
formats. ``imaging.transcode`` (:mod:`tessera.kernels.imaging.transcode`) converts many files.
"""
