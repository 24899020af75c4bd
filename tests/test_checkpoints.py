import shutil

import pytest
import torch

import course_utils.reference as reference_module
from course_utils.checkpoints import load_state, save_state, sha256_file
from course_utils.data import DataError, load_mnist, mnist_dir
from course_utils.pruning import COURSE_SPARSITY, model_kept_fraction
from course_utils.reference import (
    PRUNE_RECIPES,
    RECIPES,
    PruneRecipe,
    Recipe,
    cache_path,
    pretrained,
)
from course_utils.zoo import build_model


def test_state_dict_round_trip(tmp_path):
    model = build_model("lenet")
    path = save_state(model, tmp_path / "sub" / "lenet.pt")
    loaded = load_state(build_model("lenet"), path)
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"fc.weight": torch.zeros(1), "payload": print}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        load_state(build_model("linear"), path)


def test_sha256_of_known_bytes(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert (sha256_file(tmp_path / "abc")
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


@pytest.mark.parametrize("name", ["lenet", "lenet300", "lenet5", "binaryconnect", "lenet300_pruned",
                                  "lenet5_pruned"])
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
    for layer, sparsity in COURSE_SPARSITY[name].items():
        weight = model.get_submodule(layer).weight
        assert (weight == 0).float().mean().item() == pytest.approx(sparsity, abs=1e-3)


def test_unknown_pretrained_name():
    with pytest.raises(ValueError, match="no pretrained model 'vgg'.*lenet300_pruned"):
        pretrained("vgg")


@pytest.fixture
def checkpoint_dir(tmp_path, monkeypatch):
    """The checkpoints folder of an empty data folder of its own (``$COURSE_DATA_DIR``); MNIST stays
    the shipped one."""
    monkeypatch.setenv("COURSE_MNIST_DIR", str(mnist_dir()))  # before the data folder moves
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    return tmp_path / "checkpoints"


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


def test_pretrained_trains_on_the_given_dataset_and_caches_it_apart(checkpoint_dir, tiny_mnist,
                                                                    monkeypatch):
    monkeypatch.setitem(RECIPES, "lenet300", Recipe(epochs=1, lr=0.05))
    monkeypatch.setitem(PRUNE_RECIPES, "lenet300_pruned",
                        PruneRecipe("lenet300", rounds=1, epochs_per_round=1))
    roots = []

    def load_tiny(root=None):  # the tiny dataset has 30 training images: a validation split of 5
        roots.append(root)
        return load_mnist(root, val_size=5)

    monkeypatch.setattr(reference_module, "load_mnist", load_tiny)
    first = pretrained("lenet300", root=tiny_mnist)
    assert roots == [tiny_mnist]
    cache = checkpoint_dir / "cache"
    assert sorted(cache.rglob("*.pt")) == [cache_path("lenet300", tiny_mnist)]
    # a folder of the dataset's own
    assert cache_path("lenet300", tiny_mnist).parent.parent == cache
    second = pretrained("lenet300", root=tiny_mnist)
    assert roots == [tiny_mnist]  # loaded, not trained again
    assert torch.equal(first.fc1.weight, second.fc1.weight)
    # retrained on the same dataset, from its lenet300
    pretrained("lenet300_pruned", root=tiny_mnist)
    assert roots == [tiny_mnist] * 2
    assert cache_path("lenet300_pruned", tiny_mnist).exists()
    assert not (cache / "lenet300.pt").exists()  # the default dataset's model is not this one


def test_the_cache_is_named_by_the_datasets_content(tiny_mnist, tmp_path):
    copy = shutil.copytree(tiny_mnist, tmp_path / "copy")
    assert cache_path("lenet5", copy) == cache_path("lenet5", tiny_mnist) != cache_path("lenet5")
    (copy / "MD5SUMS").write_text((copy / "MD5SUMS").read_text().replace("train-images",
                                                                         "train-images "))
    assert cache_path("lenet5", copy) != cache_path("lenet5", tiny_mnist)


def test_a_missing_data_folder_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"absent does not exist\. Set COURSE_DATA_DIR"):
        pretrained("lenet300")
