"""``--precision auto`` picks bf16 only on native hardware where it measured faster; bf16 elsewhere warns."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brightscan.model import create_model, load_model
from brightscan.train import TrainConfig, Trainer
from brightscan.train.precision import EmulatedPrecisionWarning, native_bf16, resolve_precision

CPU = torch.device("cpu")


def test_auto_is_fp32_without_native_bf16_and_measures_nothing() -> None:
    model = create_model("mi_cnn.tiny", device="cpu")
    assert resolve_precision("auto", model, 16, CPU, flags={"avx2", "avx512f"}) == ("fp32", {})


def test_auto_on_native_bf16_measures_both_and_takes_the_faster() -> None:
    model = create_model("mi_cnn.tiny", device="cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chosen, rates = resolve_precision("auto", model, 16, CPU, flags={"avx512_bf16"})
    assert set(rates) == {"fp32", "bf16"} and all(r > 0 for r in rates.values())
    assert chosen == ("bf16" if rates["bf16"] >= 1.1 * rates["fp32"] else "fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # probes train copies


def test_the_measurement_takes_each_precision_best_of_interleaved_rounds(caplog) -> None:
    import ast
    import logging
    import re

    from brightscan.train.precision import measure_precisions

    model = create_model("mi_cnn.tiny", device="cpu")
    with caplog.at_level(logging.DEBUG, logger="brightscan.train.precision"):
        rates = measure_precisions(model, 4, CPU, steps=1, rounds=3)
    rounds = ast.literal_eval(re.search(r"rounds \(alerts/s\): (.*)", caplog.text).group(1))
    assert {p: len(v) for p, v in rounds.items()} == {"fp32": 3, "bf16": 3}
    assert all(rates[p] == pytest.approx(max(rounds[p]), abs=0.051) for p in rounds)


def test_a_choice_made_on_a_loaded_machine_says_so(caplog) -> None:
    import os

    model = create_model("mi_cnn.tiny", device="cpu")
    cpus = os.cpu_count() or 1
    resolve_precision("auto", model, 4, CPU, flags={"amx_bf16"}, load=cpus + 1.5)
    assert f"loaded machine (load average {cpus + 1.5:.1f} on {cpus} CPUs)" in caplog.text
    caplog.clear()
    resolve_precision("auto", model, 4, CPU, flags={"amx_bf16"}, load=0.0)
    assert "loaded machine" not in caplog.text


def test_bf16_without_native_support_warns_and_is_kept() -> None:
    model = create_model("mi_cnn.tiny", device="cpu")
    with pytest.warns(EmulatedPrecisionWarning, match="no native bf16"):
        assert resolve_precision("bf16", model, 16, CPU, flags={"avx2"}) == ("bf16", {})


def test_fp32_and_native_bf16_do_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    model = create_model("mi_cnn.tiny", device="cpu")
    resolve_precision("fp32", model, 16, CPU, flags=set())
    resolve_precision("bf16", model, 16, CPU, flags={"amx_bf16"})
    assert not [w for w in recwarn if issubclass(w.category, EmulatedPrecisionWarning)]


def test_native_bf16_reads_the_flags() -> None:
    assert native_bf16(CPU, {"amx_bf16"}) and native_bf16(CPU, {"avx512_bf16"})
    assert not native_bf16(CPU, {"avx512f", "avx2", "avx512_vnni"})


def test_the_resolved_precision_is_recorded_in_the_model(synthetic_dataset: Path, tmp_path: Path) -> None:
    config = TrainConfig(preset="mi_cnn.tiny", epochs=1, max_steps_per_epoch=1)
    assert config.precision == "auto"
    Trainer(config).fit(synthetic_dataset, tmp_path / "m")
    training = load_model(tmp_path / "m", device="cpu").card["provenance"]["training"]
    assert training["precision"] in ("fp32", "bf16")
    if native_bf16(CPU):
        assert set(training["precision_rates"]) == {"fp32", "bf16"}
    else:
        assert training["precision"] == "fp32" and training["precision_rates"] == {}
