"""NAS workers on a real PostgreSQL server (started here on loopback): two workers share one study, one is killed
mid-trial (SIGKILL) and its trial is failed by the heartbeat check and retried; then the last worker is killed
too and a new one resumes the study. Every trial ends complete, pruned, or failed-and-retried: none is lost.
An embedded (SQLite) run killed mid-trial resumes from its folder the same way."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgedeploy.compress.nas.storage import study_trials

TINY = """study: {study}
space:
  resolution: [8]
  stem: [conv, s2d]
  stem_width: [8]
  stages:
    - {{blocks: [conv, ghost, repvgg, partial], depth: [1, 2], width: [8, 16], kernel: [3], expansion: [1, 2]}}
trials: {trials}
population: 4
epochs: {epochs}
final_epochs: 0
latency_repeats: 20
heartbeat_s: 1
grace_s: 3
"""


@pytest.fixture(scope="module")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 for this module."""
    from edgedeploy.compress.nas.storage import postgres_bindir, temporary_postgres

    if postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin; install Debian's "
                    "postgresql package to run the multi-worker test")
    with temporary_postgres() as url:
        yield url


def _cli(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgedeploy.cli", *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env=env)


def _kill_mid_trial(proc: subprocess.Popen, study: str, url: str, timeout: float = 120.0, after: int = 0) -> int:
    """SIGKILL ``proc`` while it runs a trial (at least 0.1 s in) once the study has ``after`` finished trials;
    returns the number of the trial it was running."""
    from optuna.trial import TrialState

    deadline = time.time() + timeout
    while time.time() < deadline:
        trials = study_trials(study, url)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        mine = [t for t in _running(trials, proc) if time.time() - t.datetime_start.timestamp() > 0.1]
        if mine and done >= after:
            # freeze the worker, then read its trial again: only one still running is killed mid-trial (a trial
            # can finish between the read above and the kill)
            os.kill(proc.pid, signal.SIGSTOP)
            orphans = _running(study_trials(study, url), proc)
            if orphans:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return orphans[0].number
            os.kill(proc.pid, signal.SIGCONT)
        if proc.poll() is not None:
            raise AssertionError(f"worker {proc.pid} exited (code {proc.returncode}) before it could be killed")
        time.sleep(0.05)
    raise AssertionError("no running trial to kill")


def _sqlite_has_study(path: Path, study: str) -> bool:
    """True once the run has created ``study`` in its SQLite file, read without Optuna: opening an RDBStorage
    while the run still creates the schema races it for the schema version row."""
    import sqlite3

    if not path.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
            return db.execute("SELECT 1 FROM studies WHERE study_name = ?", (study,)).fetchone() is not None
    except sqlite3.Error:                       # no tables yet, or locked by the writer
        return False


def _running(trials: list, proc: subprocess.Popen) -> list:
    """The trials ``proc`` is running, as the storage records them."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state == TrialState.RUNNING and t.datetime_start is not None
            and t.user_attrs.get("worker", "").endswith(f":{proc.pid}")]


def _no_trial_lost(trials: list, budget: int, killed: list[int]) -> None:
    from optuna.trial import TrialState

    by_number = {t.number: t for t in trials}
    retries = {t.system_attrs["failed_trial"]: t for t in trials if "failed_trial" in t.system_attrs}
    for n in killed:
        assert by_number[n].state == TrialState.FAIL, f"killed trial {n} is {by_number[n].state.name}"
        assert n in retries, f"killed trial {n} was not retried"
    for t in trials:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL), f"trial {t.number} {t.state}"
        if t.state == TrialState.FAIL:
            retry = next(r for r in trials if t.number in r.system_attrs.get("retry_history", []))
            assert retry.params == t.params
            assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED) or retry.number in retries
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == budget


@pytest.mark.slow
def test_two_workers_one_killed_mid_trial_then_the_study_resumes(postgres_url, tmp_path):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.format(study="kill", trials=10, epochs=2))
    a = _cli("nas", "run", str(cfg), "--storage", postgres_url, "--out", str(tmp_path / "a"), "--no-report",
             log=tmp_path / "a.log")
    deadline = time.time() + 120
    while not study_trials("kill", postgres_url) and time.time() < deadline:
        assert a.poll() is None, (tmp_path / "a.log").read_text()
        time.sleep(0.2)
    b = _cli("nas", "worker", "--study", "kill", "--storage", postgres_url, log=tmp_path / "b.log")
    killed = [_kill_mid_trial(b, "kill", postgres_url)]                  # B dies; A goes on and retries its trial
    killed.append(_kill_mid_trial(a, "kill", postgres_url, after=4))     # then A dies too: nobody is left
    c = _cli("nas", "worker", "--study", "kill", "--storage", postgres_url, log=tmp_path / "c.log")
    assert c.wait(timeout=180) == 0, (tmp_path / "c.log").read_text()
    log = (tmp_path / "c.log").read_text()
    assert "study kill: 10 complete, 0 pruned, 0 failed, 2 retried (worker lost)" in log
    trials = study_trials("kill", postgres_url)
    _no_trial_lost(trials, budget=10, killed=killed)
    workers = {t.user_attrs.get("worker", "").rsplit(":", 1)[-1] for t in trials}
    assert {str(a.pid), str(b.pid), str(c.pid)} <= workers               # three processes shared the study


def test_killed_embedded_run_resumes_from_its_folder(tmp_path):
    from edgedeploy.compress.nas import load_config, nas

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.format(study="local", trials=5, epochs=2))      # 2 epochs: trials long enough to catch
    out = tmp_path / "run"
    a = _cli("nas", "run", str(cfg), "--out", str(out), "--no-report", log=tmp_path / "a.log")
    url = f"sqlite:///{out / 'study.db'}"
    deadline = time.time() + 120
    while not _sqlite_has_study(out / "study.db", "local") and time.time() < deadline:
        assert a.poll() is None, (tmp_path / "a.log").read_text()
        time.sleep(0.2)
    killed = _kill_mid_trial(a, "local", url, after=1)
    result = nas(load_config(cfg), out=out)                       # the same folder: the orphan trial is retried
    assert result.counts["retried"] == 1 and result.counts["complete"] + result.counts["pruned"] == 5
    _no_trial_lost(study_trials("local", url), budget=5, killed=[killed])
