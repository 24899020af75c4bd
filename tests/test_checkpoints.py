import pytest
import torch

import course_utils.reference as reference_module
from course_utils.checkpoints import load_state, save_state, sha256_file
from course_utils.data import DataError
from course_utils.models import build_model
from course_utils.pruning import HAN_SPARSITY, model_kept_fraction
from course_utils.reference import RECIPES, Recipe, pretrained


def test_state_dict_round_trip(tmp_path):
    model = build_model("lenet")
    path = save_state(model, tmp_path / "sub" / "lenet.pt")
    loaded = load_state(build_model("lenet"), path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(1), "payload": print}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_state(build_model("linear"), path)


def test_sha256_of_known_bytes(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("name", ["lenet", "lenet300", "lenet5", "binaryconnect", "lenet300_pruned", "lenet5_pruned"])
def test_shipped_reference_checkpoints_load_and_are_accurate(name, mnist):
    model = pretrained(name)
    assert not model.training
    x, y = mnist.test[:2000]
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert accuracy > 0.97


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_shipped_pruned_models_keep_at_most_8_percent_of_their_weights(name):
    model = pretrained(f"{name}_pruned")
    assert model_kept_fraction(model) <= 0.08
    for layer, sparsity in HAN_SPARSITY[name].items():
        weight = dict(model.named_parameters())[layer]
        assert (weight == 0).float().mean().item() == pytest.approx(sparsity, abs=1e-3)


def test_unknown_pretrained_name():
    with pytest.raises(ValueError, match="no pretrained model 'vgg'.*lenet300_pruned"):
        pretrained("vgg")


@pytest.fixture
def checkpoint_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(reference_module, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(reference_module, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(reference_module, "SUMS_PATH", tmp_path / "SHA256SUMS")
    return tmp_path


def test_a_tampered_checkpoint_is_refused(checkpoint_dir):
    path = save_state(build_model("lenet300"), checkpoint_dir / "lenet300.pt")
    (checkpoint_dir / "SHA256SUMS").write_text(f"{sha256_file(path)}  lenet300.pt\n")
    assert pretrained("lenet300") is not None
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(DataError, match="lenet300.pt does not match its SHA-256.*git checkout"):
        pretrained("lenet300")


def test_an_absent_checkpoint_is_trained_once_and_cached(checkpoint_dir, monkeypatch):
    monkeypatch.setitem(RECIPES, "lenet300", Recipe(epochs=1, lr=0.05))
    first = pretrained("lenet300")
    cached = checkpoint_dir / "cache" / "lenet300.pt"
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns
    second = pretrained("lenet300")
    assert cached.stat().st_mtime_ns == stamp  # loaded, not trained again
    assert torch.equal(first.fc1.weight, second.fc1.weight)
