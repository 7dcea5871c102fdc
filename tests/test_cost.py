"""Cost arithmetic against hand-computed cases; budgets on real runs; the price file override."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tessera.engine import cost, executors, spec
from tessera.engine.budget import project
from tessera.engine.run import run_job
from tessera.engine.store import Store
from tests.jobs import job_dict, write_job

BOX = cost.InstanceType(
    "box.large", vcpus=2, memory_gib=4, gpus=0, arch="x86_64", on_demand=0.36, spot=0.12
)
GPU = cost.InstanceType(
    "gpu.xlarge", vcpus=4, memory_gib=16, gpus=1, arch="x86_64", on_demand=1.0, spot=0.4
)
FARGATE = cost.FargatePrices(
    vcpu_hour=0.04048, gb_hour=0.004445, spot_vcpu_hour=0.01334, spot_gb_hour=0.001465
)
TEST_PRICES = """
[instances."test.2x"]
vcpus = 2
memory_gib = 8
gpus = 0
on_demand = 3.6
spot = 1.8
source = "test"
date = "2026-11-27"
"""


def usage(
    seconds: float, vcpus: float = 1, memory_mib: int = 1024, gpus: int = 0
) -> cost.ShardUsage:
    return cost.ShardUsage(seconds, vcpus, memory_mib, gpus)


def test_ec2_fills_the_instance_with_concurrent_shards() -> None:
    # 4 shards x 100 s, two at a time on 2 vCPUs: 200 instance-seconds at $0.0001/s.
    assert cost.ec2_cost([usage(100)] * 4, BOX, BOX.on_demand) == pytest.approx(0.02)
    assert cost.ec2_cost([usage(100)] * 4, BOX, BOX.spot) == pytest.approx(200 * 0.12 / 3600)


def test_ec2_bills_at_least_60_seconds() -> None:
    # 2 shards x 10 s on 2 slots is 10 s of instance time, billed as 60 s.
    assert cost.ec2_cost([usage(10)] * 2, BOX, 0.36) == pytest.approx(0.006)
    assert cost.ec2_cost([usage(30)] * 4, BOX, 0.36) == pytest.approx(0.006)  # exactly 60 s
    assert cost.ec2_cost([], BOX, 0.36) == 0.0


def test_ec2_memory_and_gpus_limit_the_slots() -> None:
    assert cost.slots(BOX, usage(1, memory_mib=3072)) == 1  # 4 GiB holds one 3 GiB shard
    assert cost.ec2_cost([usage(100, memory_mib=3072)] * 2, BOX, 0.36) == pytest.approx(0.02)
    assert cost.ec2_cost([usage(100, vcpus=4)], BOX, 0.36) is None  # does not fit
    assert cost.slots(BOX, usage(1, gpus=1)) == 0
    assert cost.slots(GPU, usage(1, gpus=1)) == 1  # one GPU: one shard at a time


@pytest.mark.parametrize(
    ("vcpus", "memory_mib", "expected"),
    [
        (1, 2048, (1, 2)),
        (1, 2500, (1, 3)),  # rounded up to whole GiB
        (1, 1024, (1, 2)),  # 1 vCPU needs at least 2 GiB
        (0.25, 512, (0.25, 0.5)),
        (0.25, 3000, (0.5, 3)),  # too much memory for 0.25 vCPU
        (0.3, 512, (0.5, 1)),
        (3, 4096, (4, 8)),
        (8, 17000, (8, 20)),  # 8 vCPU steps by 4 GiB: 16.6 -> 20
        (16, 122880, (16, 120)),
    ],
)
def test_fargate_rounds_up_to_valid_sizes(
    vcpus: float, memory_mib: int, expected: tuple[float, float]
) -> None:
    assert cost.fargate_size(vcpus, memory_mib) == expected


def test_fargate_refuses_what_no_task_holds() -> None:
    with pytest.raises(ValueError, match="fits no Fargate task size"):
        cost.fargate_size(32, 4096)
    assert cost.fargate_cost([usage(10, gpus=1)], FARGATE, spot=False) is None


def test_fargate_bills_each_task_with_a_one_minute_minimum() -> None:
    per_hour = 1 * 0.04048 + 2 * 0.004445  # 1 vCPU, 2 GiB
    assert cost.fargate_cost([usage(30, memory_mib=2048)], FARGATE, spot=False) == pytest.approx(
        per_hour * 60 / 3600
    )
    assert cost.fargate_cost([usage(120, memory_mib=2048)] * 3, FARGATE, spot=False) == (
        pytest.approx(3 * per_hour * 120 / 3600)
    )
    spot_per_hour = 1 * 0.01334 + 2 * 0.001465
    assert cost.fargate_cost([usage(90, memory_mib=2048)], FARGATE, spot=True) == pytest.approx(
        spot_per_hour * 90 / 3600
    )


def test_run_costs_and_work_per_dollar() -> None:
    catalogue = cost.Catalogue({"box.large": BOX, "gpu.xlarge": GPU}, FARGATE)
    rows = {(r.target, r.pricing): r for r in cost.run_costs([usage(100)] * 4, 1e9, catalogue)}
    assert rows["box.large", "on-demand"].cost_usd == pytest.approx(0.02)
    assert rows["box.large", "on-demand"].work_per_usd == pytest.approx(1e9 / 0.02)
    assert rows["box.large", "spot"].cost_usd == pytest.approx(0.02 / 3)
    # gpu.xlarge: 4 vCPUs hold 4 shards: 100 instance-seconds at $1/h.
    assert rows["gpu.xlarge", "on-demand"].cost_usd == pytest.approx(100 / 3600)
    assert rows["fargate", "fargate"].cost_usd == pytest.approx(
        4 * (0.04048 + 2 * 0.004445) * 100 / 3600
    )
    best = cost.best(rows.values(), per_model=1)
    assert [(r.pricing, r.target) for r in best] == [
        ("spot", "box.large"),
        ("on-demand", "box.large"),
        ("fargate-spot", "fargate"),
        ("fargate", "fargate"),
    ]


def test_projection_scales_remaining_shards_by_their_work() -> None:
    done = [(usage(10), 100)]
    projected = cost.project(done, [200, 50])
    assert [u.seconds for u in projected] == [10, 20, 5]
    assert cost.project([], [100]) == []


def test_the_catalogue_covers_what_batch_users_run() -> None:
    catalogue = cost.load_catalogue()
    names = set(catalogue.instances)
    assert len(names) >= 15
    for family in ("c7i.", "c7a.", "c7g.", "m7i.", "r7i.", "c6i.", "g5.", "g6.", "p4d.", "p5."):
        assert any(n.startswith(family) for n in names), family
    for itype in catalogue.instances.values():
        assert itype.source and itype.date and 0 < itype.spot < itype.on_demand
    assert catalogue.fargate.spot_vcpu_hour < catalogue.fargate.vcpu_hour


def test_a_price_file_extends_or_replaces(tmp_path: Path) -> None:
    extra = tmp_path / "prices.toml"
    extra.write_text(
        TEST_PRICES + '\n[instances."c7i.large"]\nvcpus = 2\nmemory_gib = 4\n'
        "on_demand = 1.0\nspot = 0.5\n"
    )
    catalogue = cost.load_catalogue(extra)
    assert catalogue.instances["c7i.large"].on_demand == 1.0
    assert catalogue.instances["test.2x"].spot == 1.8
    assert "c7g.large" in catalogue.instances and catalogue.fargate.vcpu_hour > 0
    only = tmp_path / "only.toml"
    only.write_text("replace = true\n" + TEST_PRICES)
    assert set(cost.load_catalogue(only).instances) == {"test.2x"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[instances."x"]\nvcpus = 2\n')
    with pytest.raises(ValueError, match=r"bad.toml: instances.x: bad or missing 'memory_gib'"):
        cost.load_catalogue(bad)


def test_project_on_a_named_basis(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text(TEST_PRICES)
    catalogue = cost.load_catalogue(tmp_path / "p.toml")
    job = spec.from_dict(job_dict(tmp_path / "s"))
    records = {0: {"seconds": 10.0, "work": 100}}
    p = project(job, records, [1, 2], [100] * 3, catalogue=catalogue, basis="test.2x:on-demand")
    assert p.usd == pytest.approx(3.6 * 60 / 3600)  # 15 s: 60 s minimum
    assert p.priced_on == "test.2x on-demand" and (p.done, p.pending) == (1, 2)
    with pytest.raises(ValueError, match="price basis 'cheap'"):
        project(job, records, [1], [100] * 2, catalogue=catalogue, basis="cheap")


def test_budget_stops_dispatch_then_a_higher_budget_resumes(
    tmp_path: Path, no_faults: None
) -> None:
    (tmp_path / "p.toml").write_text(TEST_PRICES)
    catalogue = cost.load_catalogue(tmp_path / "p.toml")
    job = spec.from_dict(job_dict(tmp_path / "store", shards=8))
    # Any run of this job costs the 60-s minimum on test.2x: $3.6 * 60 / 3600 = $0.06.
    outcome = run_job(
        job,
        executors.create("local"),
        lambda e: None,
        budget_usd=0.05,
        catalogue=catalogue,
        price_basis="test.2x:on-demand",
    )
    assert not outcome.ok and outcome.result is None
    assert "projected total $0.06" in outcome.budget_stop
    assert "exceeds budget_usd $0.05;" in outcome.budget_stop
    store = Store.open_existing(job.store)
    assert store.committed() == {0}  # the first shard calibrates; then dispatching stops
    kept = store.commit_records()[0]
    outcome = run_job(
        job,
        executors.create("local"),
        lambda e: None,
        budget_usd=0.07,
        catalogue=catalogue,
        price_basis="test.2x:on-demand",
    )
    assert outcome.ok and outcome.report["this_run"]["shards"] == 7
    assert store.commit_records()[0] == kept  # nothing committed was lost or redone
    reference = spec.from_dict(job_dict(tmp_path / "ref", shards=8))
    assert run_job(reference, executors.create("local"), lambda e: None).ok
    assert (Path(job.store) / "result.json").read_bytes() == (
        Path(reference.store) / "result.json"
    ).read_bytes()


def test_cli_budget_stop_and_cost_table(tmp_path: Path) -> None:
    prices = tmp_path / "p.toml"
    prices.write_text(TEST_PRICES)
    path = write_job(tmp_path / "job.toml", job_dict(tmp_path / "store", shards=4))
    env = {**os.environ, "TESSERA_FAULTS": "", "TESSERA_PRICES": str(prices)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tessera.engine.cli",
            "run",
            str(path),
            "--executor",
            "local",
            "--budget",
            "0.05",
            "--price-basis",
            "test.2x:on-demand",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 1
    assert "budget: the projected total $0.06 (test.2x on-demand" in proc.stderr
    assert proc.stderr.count("budget: the projected total") == 1  # said once, not twice
    proc = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "run", str(path), "--executor", "local"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert "best by path-steps/$" in proc.stdout and "fargate-spot" in proc.stdout
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    pricing = {row["pricing"] for row in report["cost"]["best"]}
    assert pricing == {"spot", "on-demand", "fargate-spot", "fargate"}
    row = next(
        r for r in report["cost"]["all"] if r["target"] == "test.2x" and r["pricing"] == "on-demand"
    )
    assert math.isclose(row["cost_usd"], 0.06)
    status = subprocess.run(
        [sys.executable, "-m", "tessera.engine.cli", "status", str(tmp_path / "store")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert status.returncode == 0 and "best by path-steps/$" in status.stdout
