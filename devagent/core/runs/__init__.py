"""Run summaries as plain data, turned into one lab-notebook entry per run.

Pure: no I/O, no clock, no environment read, no subprocess. The run wrapper (``devagent run``) runs
the user's command, reads files and the environment, and hands the values to these modules, one concern each:

- ``output``: raw output bytes → clean lines and a bounded tail;
- ``exits``: how the command ended, from its exit status and that tail;
- ``metrics``: metric lines, series and their readers, summaries, the sparkline;
- ``hparams``: argparse defaults read from the script's source, overlaid with the command line;
- ``secrets``: what looks like a secret — names, values, command lines, files, output — and its redaction;
- ``run_environment``: the allow-listed environment, secrets redacted;
- ``record``: the run record the runs journal keeps, and the facts gathered about a run;
- ``section``: the report of one run and its rendering as a notebook entry.

Import each name from the module that owns it; this package re-exports nothing.
"""
