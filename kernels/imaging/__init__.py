"""Imaging kernels: tile transcoding (decode, resample, convert, encode).

``imaging.pyramid`` (:mod:`kernels.imaging.pyramid`) cuts one large image into an OME-Zarr
multiscale image and optional Deep Zoom tiles. Its arithmetic is :mod:`kernels.imaging.downsample`
(2x2 area mean, Numba); :mod:`kernels.imaging.tiles` is the tile-grid arithmetic,
:mod:`kernels.imaging.source` reads regions of TIFF, PNG, JPEG and Zarr inputs,
:mod:`kernels.imaging.ome` and :mod:`kernels.imaging.dzi` write the two output formats.
``imaging.transcode`` (:mod:`kernels.imaging.transcode`) converts many files.
"""
