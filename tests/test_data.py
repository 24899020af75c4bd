import gzip
import hashlib

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_utils.data import (
    MNIST_FILES,
    DataError,
    DigitDataset,
    load_mnist,
    make_loader,
    mnist_dir,
    one_hot,
    pixel_mean_std,
    prepare_mnist,
    read_checksums,
    split_indices,
)

CANONICAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def test_shipped_checksums_are_the_canonical_mnist_ones():
    assert read_checksums(mnist_dir() / "MD5SUMS") == CANONICAL_MD5


def test_prepare_unpacks_files_that_match_their_checksums():
    root = prepare_mnist()
    for name in MNIST_FILES:
        assert (hashlib.md5((root / "MNIST" / "raw" / name).read_bytes()).hexdigest()
                == CANONICAL_MD5[name])


def test_missing_file_names_it_and_how_to_restore(tiny_mnist):
    (tiny_mnist / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is missing.*git checkout"):
        prepare_mnist(tiny_mnist)


def test_corrupt_content_is_refused(tiny_mnist):
    path = tiny_mnist / "train-images-idx3-ubyte.gz"
    content = bytearray(gzip.decompress(path.read_bytes()))
    content[100] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(content)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz is corrupt: the MD5"):
        prepare_mnist(tiny_mnist)


def test_truncated_gzip_is_refused(tiny_mnist):
    path = tiny_mnist / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz is corrupt"):
        prepare_mnist(tiny_mnist)


def test_missing_checksum_file_is_refused(tiny_mnist):
    (tiny_mnist / "MD5SUMS").unlink()
    with pytest.raises(DataError, match="MD5SUMS is missing"):
        prepare_mnist(tiny_mnist)


def test_a_damaged_unpacked_file_is_unpacked_again(tiny_mnist):
    prepare_mnist(tiny_mnist)
    raw = tiny_mnist / "MNIST" / "raw" / "train-images-idx3-ubyte"
    raw.write_bytes(b"garbage")
    prepare_mnist(tiny_mnist)
    assert (hashlib.md5(raw.read_bytes()).hexdigest()
            == read_checksums(tiny_mnist / "MD5SUMS")[raw.name])


def test_another_dataset_through_the_environment_variable(tiny_mnist, monkeypatch):
    monkeypatch.setenv("COURSE_MNIST_DIR", str(tiny_mnist))
    splits = load_mnist(val_size=5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (25, 5, 10)
    assert splits.test.labels.tolist() == [i % 10 for i in range(10)]


def test_the_data_folder_holds_mnist_unless_COURSE_MNIST_DIR_says_otherwise(tiny_mnist, tmp_path,
                                                                            monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    tiny_mnist.rename(data / "mnist")
    monkeypatch.delenv("COURSE_MNIST_DIR", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    assert mnist_dir() == data / "mnist"
    assert len(load_mnist(val_size=5).train) == 25
    monkeypatch.setenv("COURSE_MNIST_DIR", str(tmp_path / "elsewhere"))
    assert mnist_dir() == tmp_path / "elsewhere"
    assert mnist_dir(tmp_path / "given") == tmp_path / "given"


def test_a_missing_data_folder_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_MNIST_DIR", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"absent does not exist\. Set COURSE_DATA_DIR to a "
                       r"folder holding mnist/"):
        load_mnist()


def test_split_sizes_and_disjointness(mnist):
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (50_000, 10_000, 10_000)
    train_idx, val_idx = split_indices(60_000, 10_000, seed=0)
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(60_000))


def test_split_depends_on_the_seed_only():
    assert torch.equal(split_indices(100, 10, seed=3)[1], split_indices(100, 10, seed=3)[1])
    assert not torch.equal(split_indices(100, 10, seed=3)[1], split_indices(100, 10, seed=4)[1])


@pytest.mark.parametrize("val_size", [0, 100, -1])
def test_bad_validation_size(val_size):
    with pytest.raises(ValueError, match="val_size"):
        split_indices(100, val_size)


def test_normalisation_statistics_come_from_the_training_split(mnist):
    # Over all 60,000 training images MNIST has mean 0.1307 and std 0.3081; our 50,000 are close.
    assert mnist.train.mean == pytest.approx(0.1307, abs=1e-3)
    assert mnist.train.std == pytest.approx(0.3081, abs=1e-3)
    assert (mnist.val.mean, mnist.test.std) == (mnist.train.mean, mnist.train.std)
    x, _ = mnist.train[:5000]
    assert x.mean().item() == pytest.approx(0.0, abs=0.02)
    assert x.std().item() == pytest.approx(1.0, abs=0.02)


def test_pixel_mean_std_on_hand_made_images():
    assert (pixel_mean_std(torch.tensor([[0, 255], [255, 0]], dtype=torch.uint8))
            == pytest.approx((0.5, 0.5)))
    images = torch.tensor([[[51, 102, 153]]], dtype=torch.uint8)  # 0.2, 0.4, 0.6
    mean, std = pixel_mean_std(images)
    assert mean == pytest.approx(0.4)
    assert std == pytest.approx((0.08 / 3) ** 0.5)
    with pytest.raises(TypeError):
        pixel_mean_std(images.float())


def test_dataset_items_and_batches_are_normalised_floats():
    images = torch.tensor([[[0, 255]], [[255, 255]]], dtype=torch.uint8)  # (2, 1, 2)
    dataset = DigitDataset(images, torch.tensor([3, 7]), mean=0.5, std=0.5)
    x, y = dataset[0]
    assert x.shape == (1, 1, 2) and x.tolist() == [[[-1.0, 1.0]]] and y.item() == 3
    xb, yb = dataset[[1, 0]]
    assert xb.shape == (2, 1, 1, 2) and yb.tolist() == [7, 3]
    assert dataset.images.dtype == torch.uint8


def test_dataset_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        DigitDataset(torch.zeros(2, 28, 28), torch.zeros(2), 0.0, 1.0)
    with pytest.raises(ValueError, match="labels"):
        DigitDataset(torch.zeros(2, 28, 28, dtype=torch.uint8), torch.zeros(3), 0.0, 1.0)


@given(n=st.integers(1, 300), batch_size=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_loader_visits_every_item_once_per_epoch(n, batch_size, seed):
    dataset = DigitDataset(torch.zeros(n, 2, 2, dtype=torch.uint8), torch.arange(n), 0.0, 1.0)
    loader = make_loader(dataset, batch_size=batch_size, shuffle=True, seed=seed)
    seen = torch.cat([y for _, y in loader])
    assert sorted(seen.tolist()) == list(range(n))
    assert len(loader) == -(-n // batch_size)
    again = torch.cat([y for _, y in make_loader(dataset, batch_size=batch_size, shuffle=True,
                                                 seed=seed)])
    assert torch.equal(seen, again)


def test_loader_with_worker_processes_gives_the_same_batches():
    dataset = DigitDataset(torch.zeros(50, 2, 2, dtype=torch.uint8), torch.arange(50), 0.0, 1.0)
    in_process = [y for _, y in make_loader(dataset, batch_size=8, shuffle=True, seed=1)]
    workers = [y for _, y in make_loader(dataset, batch_size=8, shuffle=True, seed=1,
                                         num_workers=2)]
    assert all(torch.equal(a, b) for a, b in zip(in_process, workers, strict=True))


@given(st.lists(st.integers(0, 9), max_size=50))
def test_one_hot_rows_pick_the_label(labels):
    encoded = one_hot(torch.tensor(labels, dtype=torch.long))
    assert encoded.shape == (len(labels), 10)
    assert encoded.sum(dim=1).tolist() == [1.0] * len(labels)
    assert encoded.argmax(dim=1).tolist() == labels


def test_one_hot_on_known_labels_and_errors():
    assert one_hot(torch.tensor([2, 0]), num_classes=3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        one_hot(torch.tensor([10]))
    with pytest.raises(ValueError, match="integer"):
        one_hot(torch.tensor([1.0]))
