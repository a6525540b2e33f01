"""devagent's records of where each environment lives (control/sites/records.py)."""

from __future__ import annotations

import json
from pathlib import Path

from devagent.control.paths import Paths
from devagent.control.sites.records import Record, Records


def test_a_record_on_a_slurm_cluster_keeps_its_job_node_and_partition(tmp_path: Path) -> None:
    records = Records(Paths.from_environ({"HOME": str(tmp_path)}))
    record = Record(name="exp", server="hpc-login", user="dev", workspace="/home/ada/devagent/exp", port=2222,
                    slurm_job="4812", slurm_node="gpu07", slurm_partition="gpu")
    records.put(record)
    assert records.get("exp") == record
    assert records.all() == [record]


def test_a_record_written_before_slurm_reads_with_no_job(tmp_path: Path) -> None:
    records = Records(Paths.from_environ({"HOME": str(tmp_path)}))
    records.put(Record(name="exp", server="gpu-server", user="dev", workspace="/w"))
    path = records.folder / "exp.json"
    data = json.loads(path.read_text())
    for key in ("slurm_job", "slurm_node", "slurm_partition"):
        del data[key]
    path.write_text(json.dumps(data))
    found = records.get("exp")
    assert found is not None and (found.server, found.slurm_job, found.slurm_node) == ("gpu-server", None, None)
