"""Slurm, the cluster's ledger, as plain data and text: no I/O, no clock, no environment.

- request.py: what an environment asks for (partition, GPUs, CPUs, memory, time, account/QOS/constraint),
  validated, and the `sbatch` argument list; sbatch's refusals in devagent's words.
- holder.py: the batch script of the job that holds the allocation and removes the container when it ends.
- jobs.py: `squeue --json`, `squeue -o` and `scontrol -d show job` read into frozen rows (state, reason, node, GPU
  indexes, time left, place in the queue), and what each state means in devagent's words.
- nodes.py: a partition's nodes and GPUs (`scontrol -o -d show node`), and who holds each GPU.

docs/explanation/slurm.md says how devagent maps onto Slurm and what is built.
"""
