"""The control side of a Slurm cluster: Slurm's commands run on the login node, through a `run` callable.

- queue.py: `SlurmQueue`: submit the holder job (`sbatch`, the script on its stdin), read a job (`scontrol -d show
  job`), the queue (`squeue --json`), a partition's nodes (`scontrol -o -d show node`), cancel (`scancel`).
- waiting.py: `up`'s wait for the job to run: Slurm's reason and place in the queue, hopeless reasons, the
  timeout and Ctrl-C cancel the request and leave nothing.

The texts are read by the pure core/slurm/; docs/explanation/slurm.md says what is built.
"""
