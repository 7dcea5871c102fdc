"""tessera's engine: job files, planning, the checkpoint store, workers and executors.

Importing ``engine`` imports neither boto3 nor distributed; backends load when used.
"""

__version__ = "0.1.0"
