"""tessera's engine: job files, planning, the checkpoint store, workers and executors.

Importing ``engine`` imports neither boto3 nor distributed; backends load when used.
"""

from tessera._version import __version__

__all__ = ["__version__"]
