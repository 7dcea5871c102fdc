"""Pure pieces of the engine: shard splitting, pending, faults, settings, progress, report."""

from __future__ import annotations

import io

import pytest

from tessera.engine import config, faults, spec
from tessera.engine.events import Message, RunStarted, ShardCommitted, ShardFailed
from tessera.engine.executors import create
from tessera.engine.plan import pending, plan
from tessera.engine.report import Progress
from tessera.kernels.base import split_rows
from tests.jobs import job_dict


@pytest.mark.parametrize(
    ("rows", "shards", "expected"),
    [
        (10, 4, (3, (0, 3, 6, 9, 10))),
        (10, 6, (2, (0, 2, 4, 6, 8, 10))),  # 6 asked, 5 given: shards own whole, equal chunks
        (10, 20, (1, tuple(range(11)))),
        (256, 16, (16, tuple(range(0, 257, 16)))),
        (1, 5, (1, (0, 1))),
    ],
)
def test_split_rows(rows: int, shards: int, expected: tuple[int, tuple[int, ...]]) -> None:
    assert split_rows(rows, shards) == expected


def test_split_rows_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="n_shards >= 1"):
        split_rows(10, 0)


def test_pending_is_what_has_no_commit_record() -> None:
    assert pending(5, {0, 2, 4}) == [1, 3]
    assert pending(3, set()) == [0, 1, 2]
    assert pending(2, {0, 1}) == []


def test_plan_regions_cover_every_row_once(tmp_path: object) -> None:
    job = spec.from_dict(job_dict("/tmp/x", shards=3))
    layout = plan(job).layout
    for array in layout.arrays:
        covered = [r for s in range(layout.n_shards) for r in range(*layout.region(s)[array.name])]
        assert covered == list(range(array.shape[0]))
    assert sum(layout.shard_work) == layout.work == 131_072 * 16


def test_fault_rules() -> None:
    rules = faults.parse("3:raise:2; 5:exit ;7:interrupt")
    assert faults.action_for(rules, 3, 1) == "raise"
    assert faults.action_for(rules, 3, 2) == "raise"
    assert faults.action_for(rules, 3, 3) is None  # fail the first two attempts, then succeed
    assert faults.action_for(rules, 5, 9) == "exit"
    assert faults.action_for(rules, 4, 1) is None
    assert faults.parse("") == []
    with pytest.raises(ValueError, match="TESSERA_FAULTS rule '3:explode'"):
        faults.parse("3:explode")


def test_settings_read_only_their_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESSERA_WORKERS", "3")
    monkeypatch.setenv("TESSERA_EXECUTOR", "local")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:8786")
    s = config.settings()
    assert (s.workers, s.executor, s.scheduler) == (3, "local", "tcp://127.0.0.1:8786")
    monkeypatch.setenv("TESSERA_WORKERS", "many")
    with pytest.raises(ValueError, match="TESSERA_WORKERS='many' is not an integer"):
        config.settings()


def test_s3_endpoint_comes_from_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    assert config.storage_options("s3://b/p") == {
        "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}
    }
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001")
    assert config.storage_options("s3://b/p")["client_kwargs"]["endpoint_url"].endswith("9001")
    assert config.storage_options("/local/path") == {}


def test_unknown_executor_names_the_choices() -> None:
    expected = r"unknown executor 'ray'; expected one of \['auto', 'batch', 'dask', 'local'\]"
    with pytest.raises(ValueError, match=expected):
        create("ray")


def test_import_engine_pulls_in_neither_boto3_nor_distributed() -> None:
    import subprocess
    import sys

    code = (
        "import sys, tessera, tessera.engine.spec, tessera.engine.store, tessera.engine.run, "
        "tessera.engine.executors, tessera.engine.cli;"
        "import tessera.engine.worker_cli, tessera.engine.executors.batch, "
        "tessera.engine.batch.cli, tessera.engine.batch.local;"
        "print(sorted(m for m in ('boto3', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def _commit(shard: int, work: int = 1000) -> ShardCommitted:
    return ShardCommitted(shard=shard, seconds=0.5, cpu_seconds=0.5, work=work)


def test_progress_on_a_terminal_draws_a_bar() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=True)
    progress(RunStarted("demo", 4, 3, "local", "path-steps"))
    progress(_commit(1))
    progress(_commit(2))
    progress.close()
    text = out.getvalue()
    assert "job demo: 3 of 4 shards to run" in text
    assert "\r" in text and "3/4 shards" in text and "ETA" in text and "path-steps/s" in text
    assert "#" * 22 in text  # 3/4 of a 30-character bar


def test_progress_off_a_terminal_logs_lines() -> None:
    out = io.StringIO()
    progress = Progress(out, tty=False)
    progress(RunStarted("demo", 2, 2, "dask"))
    progress(Message("Dask dashboard: http://127.0.0.1:1/status"))
    progress(_commit(0))
    progress(ShardFailed(1, "ValueError: bad", retryable=False))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[1] == "Dask dashboard: http://127.0.0.1:1/status"
    assert lines[2] == "job demo shard 0 committed in 0.50 s (1 of 2 done)"
    assert lines[3] == "job demo shard 1 failed (not retried; see below)"
