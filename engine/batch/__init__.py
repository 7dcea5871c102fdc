"""AWS Batch: one array index per shard.

``contract`` holds what the submitter, the container and ``tessera batch local`` agree on (exit
codes, index files, the container command); ``render`` builds the job definition, ``submit``
the array jobs, ``status`` reads them back, ``doctor`` explains RUNNABLE-forever before it
happens, ``local`` runs a submission on this machine as Batch would. Every module imports boto3
and botocore only inside the functions that talk to AWS, so ``import engine`` stays light.
"""
