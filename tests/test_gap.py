import pytest
import torch
import torch.nn.functional as F

from course_utils.checkpoints import load_state, save_state
from course_utils.data import DigitDataset
from course_utils.gap import (
    DropoutLeNet5,
    GapHead,
    GapLeNet5,
    GapNet,
    MlpConvLeNet5,
    canvas_dataset,
    class_activation_map,
    map_on_input,
    mlpconv,
    own_digit_share,
    peak_positions,
    place_on_canvas,
)
from course_utils.models import CaffeLeNet5, count_parameters
from course_utils.reference import checkpoint_dir, pretrained
from course_utils.zoo import build_model

# Weights of the four 3x3 convolutions (no bias), BatchNorm's scale and shift per channel, 1x1
# classifier (no bias).
GAP_PARAMETERS = (1 * 16 + 16 * 32 + 32 * 48 + 48 * 64) * 9 + 2 * (16 + 32 + 48 + 64) + 64 * 10


def eval_net(seed: int = 0) -> GapNet:
    """A GapNet with random weights and non-trivial BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = GapNet()
    for bn in [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]:
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.bias.data.uniform_(-0.5, 0.5)
    return model.eval()


def test_parameter_count_by_hand():
    assert GAP_PARAMETERS == 47_184
    assert count_parameters(GapNet()) == GAP_PARAMETERS <= 50_000
    assert isinstance(build_model("gap"), GapNet)


@pytest.mark.parametrize("side, map_side", [(28, 9), (32, 10), (56, 16)])
def test_any_input_size_gives_ten_scores(side, map_side):
    model = eval_net()
    x = torch.randn(3, 1, side, side)
    assert model.class_maps(x).shape == (3, 10, map_side, map_side)  # (side + 2 * 4 margin) / 4
    assert model(x).shape == (3, 10)


def test_the_scores_are_the_averages_of_the_class_maps():
    model = eval_net()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), model.class_maps(x).mean(dim=(2, 3)))


def test_a_black_image_gives_every_class_zero_evidence():
    model = eval_net()
    black = torch.full((2, 1, 40, 40), -0.42)
    with torch.no_grad():
        assert torch.equal(model.class_maps(black), torch.zeros(2, 10, 12, 12))
        model.train()
        # in training mode too (BatchNorm uses the batch's statistics)
        assert model(black).abs().max() < 1e-6


def test_shifting_a_digit_by_multiples_of_four_keeps_its_scores():
    # A map cell sees 26 input pixels (receptive field), so the ink stays at least 22 pixels from
    # the canvas's edges: no cell that sees ink also sees the padding of a convolution.
    model = eval_net()
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digit[0, 6:22, 9:19] = torch.randint(1, 256, (16, 10),
                                         generator=torch.Generator().manual_seed(0),
                                         dtype=torch.uint8)
    canvases = torch.cat([place_on_canvas(digit, 88, top, left)
                          for top, left in [(16, 20), (40, 44), (42, 45)]])
    # (3, 1, 88, 88), normalised as the loaders do
    x = (canvases.float()[:, None] / 255 - 0.13) / 0.31
    with torch.no_grad():
        logits = model(x)
    assert logits[0].abs().max() > 1e-3  # not trivially zero
    # moved by (24, 24): on the pooling grid
    assert torch.allclose(logits[0], logits[1], rtol=1e-4, atol=1e-7)
    assert not torch.allclose(logits[0], logits[2], rtol=1e-2)  # moved by (26, 25): off the grid


def test_class_activation_map_of_the_predicted_class_averages_to_its_logit():
    model = eval_net()
    x = torch.randn(5, 1, 28, 28)
    cams, classes = class_activation_map(model, x)
    with torch.no_grad():
        logits = model(x)
    assert cams.shape == (5, 9, 9)
    assert torch.equal(classes, logits.argmax(dim=1))
    assert torch.allclose(cams.mean(dim=(1, 2)), logits[torch.arange(5), classes], atol=1e-5)
    chosen = torch.tensor([3, 3, 0, 9, 1])
    cams, classes = class_activation_map(model, x, chosen)
    assert torch.equal(classes, chosen)
    assert torch.allclose(cams.mean(dim=(1, 2)), logits[torch.arange(5), chosen], atol=1e-5)


def test_map_on_input_upsamples_and_cuts_the_frame():
    maps = torch.arange(9.0).reshape(1, 3, 3)
    full = map_on_input(maps, margin=0)
    assert full.shape == (1, 12, 12)
    # the corners keep their values
    assert full[0, 0, 0] == maps[0, 0, 0] and full[0, -1, -1] == maps[0, -1, -1]
    # Pixel 2's centre (2.5) lies 1/8 of a cell past cell 0's centre (2): the map grows by 1 per
    # cell right, 3 per cell down.
    assert full[0, 2, 2] == 0.125 * 1 + 0.125 * 3
    # 4 * 3 - 2 * 2 = 8 pixels a side
    assert torch.equal(map_on_input(maps, margin=2), full[:, 2:10, 2:10])


def test_place_on_canvas_by_hand():
    digits = torch.tensor([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], dtype=torch.uint8)
    canvas = place_on_canvas(digits, 4, 1, 2)
    assert canvas.dtype == torch.uint8 and canvas.shape == (2, 4, 4)
    assert canvas[0].tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 3, 4], [0, 0, 0, 0]]
    per_image = place_on_canvas(digits, 3, torch.tensor([0, 1]), torch.tensor([1, 0]))
    assert per_image.tolist() == [[[0, 1, 2], [0, 3, 4], [0, 0, 0]],
                                  [[0, 0, 0], [5, 6, 0], [7, 8, 0]]]
    assert per_image.sum(dim=(1, 2)).tolist() == digits.sum(dim=(1, 2)).tolist()


@pytest.mark.parametrize("top, left", [(-1, 0), (0, 3), (torch.tensor([0, 3]), 0)])
def test_a_digit_that_does_not_fit_is_refused(top, left):
    with pytest.raises(ValueError, match="does not fit a 4x4 canvas"):
        place_on_canvas(torch.ones(2, 2, 2, dtype=torch.uint8), 4, top, left)


def test_canvas_dataset_keeps_labels_and_normalisation():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    dataset = DigitDataset(images, torch.tensor([4, 0, 7]), mean=0.1, std=0.3)
    canvas = canvas_dataset(dataset, 56, 10, 20)
    x, y = canvas[[0, 1, 2]]
    assert x.shape == (3, 1, 56, 56) and y.tolist() == [4, 0, 7]
    assert (canvas.mean, canvas.std) == (0.1, 0.3)
    assert torch.equal(x[:, :, 10:38, 20:48], dataset[[0, 1, 2]][0])
    assert torch.allclose(x[:, :, :10], torch.tensor((0 - 0.1) / 0.3))  # the canvas is black


def test_shipped_gap_network_is_accurate_and_small(mnist):
    model = pretrained("gap")
    assert count_parameters(model) <= 50_000
    x, y = mnist.test[:2000]
    with torch.no_grad():
        assert (model(x).argmax(1) == y).float().mean().item() > 0.98


def test_class_activation_map_runs_on_the_models_device(other_device, one_device):
    model = eval_net()
    x, chosen = torch.randn(2, 1, 28, 28), torch.tensor([3, 0])  # fresh, on the CPU
    expected, _ = class_activation_map(model, x, chosen)
    model.to(other_device)
    with one_device():
        cams, classes = class_activation_map(model, x, chosen)
        _, predicted = class_activation_map(model, x)
    assert cams.shape == (2, 9, 9)
    assert cams.device == classes.device == predicted.device == other_device
    if other_device.type != "meta":  # values exist: the same maps as on the CPU
        assert torch.allclose(cams.cpu(), expected, atol=1e-5)


def test_the_gap_head_averages_its_one_by_one_maps():
    torch.manual_seed(0)
    head = GapHead(3, 2)
    features = torch.randn(4, 3, 5, 7)  # (B, C, H, W)
    weight = head.classifier.weight[:, :, 0, 0]  # (K, C)
    by_hand = torch.einsum("kc,bchw->bkhw", weight, features).mean(dim=(2, 3))
    torch.testing.assert_close(head(features), by_hand)
    assert count_parameters(head) == 3 * 2 and head.maps(features).shape == (4, 2, 5, 7)


def test_gap_lenet5_keeps_lenet5s_convolutions_and_drops_its_fc_layers():
    model, lenet5 = GapLeNet5(), build_model("lenet5")
    backbone = (count_parameters(lenet5) - count_parameters(lenet5.fc1)
                - count_parameters(lenet5.fc2))
    assert count_parameters(model) == backbone + 50 * 10
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_class_maps_do_not_depend_on_the_other_images_of_the_batch():
    torch.manual_seed(0)
    net = GapNet().eval()
    digit = torch.rand(1, 1, 28, 28)
    other = torch.rand(3, 1, 28, 28) * 5 - 3  # darker and brighter pixels than the digit's
    with torch.no_grad():
        alone = net.class_maps(digit)
        together = net.class_maps(torch.cat([digit, other]))[:1]
    torch.testing.assert_close(alone, together, atol=1e-5, rtol=1e-5)


def old_keyed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A GapNet state dict as it was saved before its head was a GapHead: ``classifier.weight``."""
    return {("classifier.weight" if k == "head.classifier.weight" else k): v
            for k, v in state.items()}


def test_the_head_is_a_gap_head_that_computes_what_the_old_classifier_did():
    net = eval_net()
    assert isinstance(net.head, GapHead) and not hasattr(net, "classifier")
    weight = old_keyed(net.state_dict())["classifier.weight"]  # (10, 64, 1, 1)
    x = torch.randn(3, 1, 36, 28)
    with torch.no_grad():  # GapNet's class maps and scores as written before the GapHead
        f = net.features(F.pad(torch.cat([x - x.amin(dim=(1, 2, 3), keepdim=True),
                                          torch.zeros_like(x[:1])]), [net.margin] * 4))
        maps = F.conv2d(f[:-1] - f[-1:], weight)
        assert torch.equal(net.class_maps(x), maps)
        assert torch.equal(net(x), maps.mean(dim=(2, 3)))


def test_an_old_keyed_state_dict_still_loads(tmp_path):
    source = eval_net()
    old = old_keyed(source.state_dict())
    assert "classifier.weight" in old and "head.classifier.weight" not in old
    save_state(source, tmp_path / "new.pt")
    torch.save(old, tmp_path / "old.pt")  # an instructor's cached or an older shipped file
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        expected = source(x)
        for path in [tmp_path / "old.pt", tmp_path / "new.pt"]:
            loaded = load_state(GapNet(), path).eval()  # weights_only=True, strict
            assert torch.equal(loaded(x), expected)
            assert list(loaded.state_dict()) == list(source.state_dict())
        nested = torch.nn.Sequential(GapNet()).eval()  # the renaming follows the prefix
        nested.load_state_dict({f"0.{k}": v for k, v in old.items()})
        assert torch.equal(nested(x), expected)
    assert "classifier.weight" in old  # the caller's dict is left as it was


def test_the_shipped_gap_checkpoint_has_the_gap_heads_keys():
    state = torch.load(checkpoint_dir() / "gap.pt", weights_only=True)
    assert list(state) == list(GapNet().state_dict())
    assert "head.classifier.weight" in pretrained("gap").state_dict()


def test_mlpconv_counts_its_parameters_by_hand():
    # 5x5 convolution 20 -> 50, then two 1x1 convolutions 50 -> 50; BatchNorm: scale and shift.
    assert count_parameters(mlpconv(20, 50, 5, depth=2)) == 25 * 20 * 50 + 2 * 50 * 50 + 3 * 2 * 50
    assert count_parameters(mlpconv(20, 50, 5, depth=2, batch_norm=False)) == (
        (25 * 20 + 1) * 50 + 2 * (50 + 1) * 50)  # with biases
    block = mlpconv(3, 8, 3, depth=1, batch_norm=False)
    assert [type(m).__name__ for m in block] == ["Conv2d", "ReLU", "Conv2d", "ReLU"]
    assert block[2].kernel_size == (1, 1) and block(torch.randn(2, 3, 7, 7)).shape == (2, 8, 5, 5)
    assert count_parameters(MlpConvLeNet5(depth=2)) == 32_220
    assert (count_parameters(MlpConvLeNet5(depth=0, batch_norm=False))
            == count_parameters(GapLeNet5()))


def test_mlpconv_lenet5_at_depth_0_computes_what_gap_lenet5_computes():
    torch.manual_seed(0)
    gap_lenet5, plain = GapLeNet5(), MlpConvLeNet5(depth=0, batch_norm=False)
    plain.block1[0].load_state_dict(gap_lenet5.conv1.state_dict())
    plain.block2[0].load_state_dict(gap_lenet5.conv2.state_dict())
    plain.head.load_state_dict(gap_lenet5.head.state_dict())
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(plain(x), gap_lenet5(x))  # ReLU, then max pooling: the same
    assert plain.features(x).shape == (3, 50, 4, 4)
    assert not torch.allclose(MlpConvLeNet5(depth=1, batch_norm=False)(x), gap_lenet5(x))


def test_dropout_lenet5_drops_hidden_units_in_training_only():
    torch.manual_seed(0)
    model, plain = DropoutLeNet5(p=0.5), CaffeLeNet5()
    plain.load_state_dict(model.state_dict())  # the same parameters: dropout has none
    x = torch.randn(4, 1, 28, 28)
    model.eval()
    torch.testing.assert_close(model(x), plain(x))
    model.train()
    first, second = model(x), model(x)
    assert not torch.allclose(first, second)  # a new mask on every pass
    hidden = torch.relu(model.fc1(model.features(x).flatten(1)))  # (4, 500)
    dropped = model.dropout(hidden)
    kept = dropped != 0
    assert 0.4 < kept[hidden > 0].float().mean() < 0.6
    torch.testing.assert_close(dropped[kept], 2 * hidden[kept])  # scaled by 1 / (1 - p)


def test_peak_positions_by_hand():
    maps = torch.zeros(2, 3, 5)
    maps[0, 2, 1] = 1.0  # cell (2, 1): input pixels 8-11 and 4-7 of the framed image
    maps[1] = -2.0
    maps[1, 0, 4] = -1.0  # all negative: the largest is still the peak
    assert peak_positions(maps, margin=0).tolist() == [[9.5, 5.5], [1.5, 17.5]]
    assert peak_positions(maps, margin=4).tolist() == [[5.5, 1.5], [-2.5, 13.5]]
    assert peak_positions(maps, margin=0, stride=2).tolist() == [[4.5, 2.5], [0.5, 8.5]]


def halves(dataset: DigitDataset, n: int) -> tuple[DigitDataset, DigitDataset]:
    """The first ``n`` digits and the next ``n``, with the dataset's normalisation."""
    def part(start: int) -> DigitDataset:
        return DigitDataset(dataset.images[start : start + n], dataset.labels[start : start + n],
                            dataset.mean, dataset.std)
    return part(0), part(n)


def test_each_class_map_peaks_on_its_own_digit_and_an_untrained_networks_do_not(mnist):
    # Measured: 99.8% for the shipped network, 50.7% for the untrained one (456 pairs of
    # different digits among the first 500), 0.2% for the shipped one asked for the other class.
    left, right = halves(mnist.test, 500)
    trained = pretrained("gap")
    assert own_digit_share(trained, left, right) > 0.97
    torch.manual_seed(0)
    assert 0.35 < own_digit_share(GapNet().eval(), left, right) < 0.65  # a coin toss
    # Ask for the other digit's class: the maps now peak on the wrong half, and the share collapses.
    swapped_left = DigitDataset(left.images, right.labels, left.mean, left.std)
    swapped_right = DigitDataset(right.images, left.labels, right.mean, right.std)
    assert own_digit_share(trained, swapped_left, swapped_right) < 0.03


def test_a_single_digit_on_a_canvas_is_found_even_by_an_untrained_network(mnist):
    # Black gives zero evidence, so any map's peak lies on or beside the ink: this test of
    # localisation holds by construction, which is why the two-digit test above exists.
    torch.manual_seed(0)
    untrained = GapNet().eval()
    top, left = torch.randint(0, 29, (2, 300), generator=torch.Generator().manual_seed(0))
    x, _ = canvas_dataset(halves(mnist.test, 300)[0], 56, top, left)[list(range(300))]
    row, col = peak_positions(class_activation_map(untrained, x)[0], untrained.margin).T
    inside = (row >= top) & (row < top + 28) & (col >= left) & (col < left + 28)
    assert inside.float().mean() > 0.95  # measured: 100%
