"""Run records: stored once, loaded without training, missing probes added, damage detected."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch

import bnlib.records as records
from bnlib import RunConfig, load_or_run
from bnlib.probes.hook import FunctionProbe
from bnlib.records import Record, frame, record_key, runs_dir

DLN = RunConfig(model="dln", dln_depth=5, dln_dim=4, dln_samples=40, lr=3e-4, steps=15, log_every=5, norm="batch")
NORM_PROBE = FunctionProbe("weight-norm", 5, lambda ctx: {"norm": ctx.model.layer(1).weight.norm()})
LOSS_PROBE = FunctionProbe("loss", 3, lambda ctx: {"loss": ctx.loss().detach(), "pair": torch.tensor([1.0, 2.0])})


def no_training(*args, **kwargs):
    raise AssertionError("trained again")


def test_second_call_loads_without_training(monkeypatch):
    first = load_or_run(DLN)
    assert first.status == "finished" and first.path.parent == runs_dir()
    monkeypatch.setattr(records, "train", no_training)
    second = load_or_run(DLN)
    np.testing.assert_array_equal(first.metrics["train_loss"], second.metrics["train_loss"])
    assert second.config == DLN and second.environment["data"]["kind"] == "synthetic"


def test_record_files_are_json_npz_and_weights_only(monkeypatch):
    record = load_or_run(DLN, [NORM_PROBE])
    names = sorted(p.name for p in record.path.iterdir())
    assert names == ["metrics.npz", "model.pt", "probe-weight-norm-every5.npz", "record.json"]
    meta = json.loads((record.path / "record.json").read_text())
    assert meta["status"] == "finished" and meta["config"]["lr"] == 3e-4 and meta["wall_time_s"] > 0
    assert {"torch", "device", "git_commit", "data"} <= meta["environment"].keys()
    weights = torch.load(record.path / "model.pt", weights_only=True)
    assert weights["hidden.0.norm.running_var"].shape == (4,)
    with np.load(record.path / "metrics.npz", allow_pickle=False) as metrics:
        assert len(metrics["train_loss"]) == 15


def test_only_missing_probes_are_computed(monkeypatch):
    plain = load_or_run(DLN, [NORM_PROBE])
    ran = []
    real_train = records.train
    monkeypatch.setattr(
        records, "train", lambda config, probes, options: ran.append(probes) or real_train(config, probes, options)
    )
    both = load_or_run(DLN, [NORM_PROBE, LOSS_PROBE])
    assert [[p.name for p in probes] for probes in ran] == [["loss"]]
    np.testing.assert_array_equal(both.metrics["train_loss"], plain.metrics["train_loss"])
    np.testing.assert_array_equal(both.probes["weight-norm-every5"]["norm"], plain.probes["weight-norm-every5"]["norm"])
    assert both.probes["loss-every3"]["step"].tolist() == [0, 3, 6, 9, 12]
    load_or_run(DLN, [LOSS_PROBE])
    assert len(ran) == 1


def test_damaged_record_warns_and_is_recomputed(capsys):
    record = load_or_run(DLN)
    metrics = record.path / "metrics.npz"
    metrics.write_bytes(metrics.read_bytes()[:50])
    capsys.readouterr()
    again = load_or_run(DLN)
    err = capsys.readouterr().err
    assert err.startswith(f"bnlib: warning: run record {record.path} is damaged (metrics.npz does not match")
    assert err.endswith("; it will be recomputed\n") and err.count("\n") == 1
    np.testing.assert_array_equal(again.metrics["train_loss"], record.metrics["train_loss"])


def test_unfinished_record_is_recomputed():
    record = load_or_run(DLN)
    (record.path / "record.json").unlink()  # as if killed before the record was complete
    assert load_or_run(DLN).status == "finished"


def test_key_depends_on_config_and_data_copy(cifar_tar, tmp_path, monkeypatch):
    from conftest import fake_cifar, write_image_tar

    vgg = RunConfig(width=0.0625, steps=2, train_per_class=20, test_per_class=10)
    assert record_key(vgg) != record_key(vgg.replace(seed=1))
    assert record_key(vgg) == record_key(vgg.replace())
    other = write_image_tar(tmp_path / "other.tar.gz", fake_cifar(seed=1))
    monkeypatch.setenv("BNLIB_DATA", str(other))
    key_other = record_key(vgg)
    monkeypatch.setenv("BNLIB_DATA", str(cifar_tar))
    assert record_key(vgg) != key_other


def test_tidy_frames():
    record = load_or_run(DLN, [LOSS_PROBE], label="dln-bn")
    curves = record.curves()
    assert set(curves.columns) >= {"step", "metric", "value", "run", "norm", "lr", "seed"}
    assert (curves["run"] == "dln-bn").all() and set(curves["metric"]) == {"train_loss"}
    probe = record.probe_frame(LOSS_PROBE)
    pair = probe[probe["quantity"] == "pair"]
    assert pair["index"].tolist() == [0, 1] * 5 and pair["value"].tolist() == [1.0, 2.0] * 5
    both = frame([record, load_or_run(DLN.replace(seed=1))])
    assert isinstance(both, pd.DataFrame) and set(both["seed"]) == {0, 1}
    with pytest.raises(KeyError, match="no probe"):
        record.probe_frame("ics")


def test_diverged_runs_are_recorded_as_such():
    record = load_or_run(DLN.replace(norm="none", lr=10.0, steps=100))
    assert record.diverged and record.final["steps"] < 100


def test_records_are_readable_like_ordinary_files():
    old = os.umask(0o022)
    try:
        record = load_or_run(DLN)
    finally:
        os.umask(old)
    for path in record.path.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_probes_are_found_by_the_start_of_their_key_and_read_as_tables():
    record = load_or_run(DLN, [LOSS_PROBE, FunctionProbe("lossless", 5, lambda ctx: {"x": torch.tensor(1.0)})])
    assert record.probe_key("loss-") == "loss-every3" and record.probe_key("lossl") == "lossless-every5"
    with pytest.raises(KeyError, match="no probe"):
        record.probe_key("loss")  # the start of two keys: ambiguous
    pair = record.probe_table("loss-", "pair")
    assert list(pair.index) == [0, 3, 6, 9, 12] and list(pair.columns) == [0, 1]
    assert (pair[1] == 2.0).all()


def test_a_record_gives_back_its_final_and_initial_networks():
    from bnlib.train import initial_model, train

    record = load_or_run(DLN)
    final = record.model()
    for name, value in final.state_dict().items():
        torch.testing.assert_close(value, torch.load(record.path / "model.pt", weights_only=True)[name])
    # the initial network is the one training starts from: a step of 1e-30 leaves its weights in place
    state = torch.random.get_rng_state()
    start = initial_model(DLN)
    assert torch.equal(torch.random.get_rng_state(), state)
    moved = train(DLN.replace(lr=1e-30, steps=1)).model_state
    for name, value in start.named_parameters():
        torch.testing.assert_close(value.detach(), moved[name], rtol=0, atol=1e-20)


def test_the_highest_smoothed_accuracy_of_a_run_and_of_one_too_short_to_smooth():
    from synthetic import record

    from bnlib.experiments import Experiment

    run = record(Experiment("vgg", "batch", 0.1), steps_to=200)
    assert run.highest() == pytest.approx(run.smoothed()[-1]) and run.highest() > 0.4
    short = Record(run.config, "finished", {k: v[:5] for k, v in run.metrics.items()}, {}, run.final, 1.0, {})
    assert np.isnan(short.highest())  # shorter than the window: no smoothed value, and no warning
