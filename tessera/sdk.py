"""The kernel SDK: ``from tessera.sdk import BlockKernel, param`` (see README, "Write your own
kernel"). Defined in ``tessera.kernels.sdk``."""

from tessera.kernels.sdk import (
    ArraySpec,
    BlockKernel,
    InputIO,
    ItemError,
    Kernel,
    Layout,
    Location,
    ParamError,
    ShardIO,
    ShardOutput,
    param,
    parse_dataclass,
    split_rows,
)

__all__ = [
    "ArraySpec",
    "BlockKernel",
    "InputIO",
    "ItemError",
    "Kernel",
    "Layout",
    "Location",
    "ParamError",
    "ShardIO",
    "ShardOutput",
    "param",
    "parse_dataclass",
    "split_rows",
]
