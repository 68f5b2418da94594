"""The workflow through its Slurm profile on a real single-node Slurm cluster on this machine.

tests/cluster/slurm.sh starts munged, slurmctld and slurmd (Debian's slurm-wlm, installed by
.ci/run); the test submits a one-case study with `--workflow-profile`, checks the contract
outputs and reads the scheduler's own record of the jobs (its job-completion log and squeue).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SLURM = ROOT / "tests" / "cluster" / "slurm.sh"
JOBCOMP = Path("/var/log/slurm-aerialseg/jobcomp.log")

missing = [tool for tool in ("slurmctld", "slurmd", "sbatch", "munged") if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()]
pytestmark = [
    pytest.mark.workflow,
    pytest.mark.skipif(bool(missing), reason=f"Slurm is not installed ({', '.join(missing)} missing; .ci/run installs slurm-wlm and munge)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="starting the Slurm daemons needs root"),
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("snakemake_executor_plugin_slurm") is None,
        reason="snakemake-executor-plugin-slurm is not installed (requirements-dev.txt)",
    ),
]


@pytest.fixture(scope="module")
def cluster():
    subprocess.run(["bash", str(SLURM), "start"], check=True, capture_output=True, text=True, timeout=120)
    yield
    subprocess.run(["bash", str(SLURM), "stop"], check=True, capture_output=True, timeout=60)


def slurm_profile(tmp_path) -> Path:
    """profiles/slurm as shipped, adapted the way its ADAPT comments say for this test cluster."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile.update({"slurm-status-command": "squeue", "slurm-no-account": True, "latency-wait": 10, "jobs": 8,
                    # jobs of seconds on an idle test node: first ask for their status after 1 s, not 40 s (then
                    # 11 s later, 21 s later, ...: the plugin waits 10 s longer after each check without news)
                    "slurm-init-seconds-before-status-checks": 1})
    profile["default-resources"] = {"slurm_partition": "main", "mem_mb": 1000, "runtime": 30, "cpus_per_task": 1}
    for rule, resources in profile["set-resources"].items():
        resources.pop("slurm_partition", None)
        resources["mem_mb"] = 2000
        if "gpu" in resources:
            resources["gpu"] = 0  # the test node has no GPU: drop the request
            resources["cpus_per_task"] = 1
    profile["set-threads"] = {"train": 1, "predict": 1, "calibrate": 1}
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))
    return folder


def write_area(path: Path) -> None:
    """A 96 x 144 px GeoTIFF to map as 48 px blocks: 2 x 3 blocks, the top-left one all
    no-data (nodata 0, with a collar down the left edge), so 5 block jobs."""
    import numpy as np
    import rasterio
    from rasterio.transform import Affine

    from aerialseg import demo

    pixels = demo.render_scene(160, seed=9)[0][:96, :144].copy()
    pixels[:48, :48] = 0
    pixels[:, :20] = 0
    with rasterio.open(path, "w", driver="GTiff", height=96, width=144, count=3, dtype="uint8", nodata=0,
                       crs="EPSG:32640", transform=Affine(0.5, 0, 305000, 0, -0.5, 2790000)) as dataset:
        dataset.write(np.moveaxis(pixels, -1, 0))


def test_one_case_runs_through_slurm(cluster, tmp_path):
    profile = slurm_profile(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    write_area(workdir / "area.tif")
    (tmp_path / "blocks.yaml").write_text(yaml.safe_dump({"data": {"predict": ["area.tif"]},
                                                          "predict": {"block_size": 48}}))
    command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
               "--workflow-profile", str(profile), "--configfile", str(ROOT / "tests/workflow/slurm.yaml"),
               str(tmp_path / "blocks.yaml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    results = workdir / "results"
    history = pd.read_csv(results / "cases/scratch_p32/history.csv")
    assert history.epoch.tolist() == [1, 2]
    assert pd.read_csv(results / "summary/evaluation.csv").case.tolist() == ["scratch_p32", "scratch_p32"]
    assert "Job" in result.stderr and "has been submitted with SLURM jobid" in result.stderr

    # the scheduler's own record: every job ran as a Slurm job and completed
    submitted = {line.split("SLURM jobid ")[1].split()[0] for line in result.stderr.splitlines() if "SLURM jobid" in line}
    assert len(submitted) >= 10  # demo x2, class_stats, patches, train, predict, evaluate x2, ...
    completion = {}
    for line in JOBCOMP.read_text().splitlines():  # slurmctld's job-completion log, the last record per id
        completion[line.split("JobId=")[1].split()[0]] = line
    assert submitted <= set(completion), "jobs missing from the scheduler's completion log"
    assert all("JobState=COMPLETED" in completion[job] and "ExitCode=0:0" in completion[job] for job in submitted)
    queue = subprocess.run(["squeue", "--states=all", "-h", "-o", "%i %k %T"], capture_output=True, text=True, check=True)
    rules = {fields[1] for fields in map(str.split, queue.stdout.splitlines()) if fields[0] in submitted}
    assert "rule_class_stats" in rules
    for rule in ("train", "predict"):
        assert any(name.startswith(f"rule_{rule}_wildcards") and "scratch_p32" in name for name in rules), rules

    # the map of area.tif as block jobs on the cluster: the gathered map is the one-job map made here
    blocks = [name for name in rules if name.startswith("rule_map_block_wildcards")]
    assert len(blocks) == 5, rules
    assert any(name.startswith("rule_map_gather") for name in rules) and any(name.startswith("rule_map_grid")
                                                                          for name in rules), rules
    assert not list((results / "maps/scratch_p32/blocks/area").glob("*.npz"))  # temporary: gone once gathered
    from aerialseg import cli

    assert cli.main(["predict", str(results / "cases/scratch_p32/model.pt"), str(workdir / "area.tif"), "-o",
                     str(tmp_path / "local"), "--stride", "16", "--device", "cpu", "--threads", "1"]) == 0
    import rasterio

    with rasterio.open(results / "maps/scratch_p32/area.tif") as gathered, rasterio.open(tmp_path / "local/area.tif") as local:
        ids = gathered.read(1)
        assert (ids == gathered.nodata).any() and (ids != gathered.nodata).any()
        assert (ids == local.read(1)).all() and gathered.colormap(1) == local.colormap(1)
        assert gathered.tags(1) == local.tags(1) and gathered.overviews(1) == local.overviews(1)
