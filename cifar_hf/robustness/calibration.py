"""How far a classifier's confidence can be trusted: ECE, NLL, Brier, reliability bins and temperature scaling."""

import torch
import torch.nn.functional as F

from ..metrics import mean_cross_entropy

ECE_BINS = 15  # equal-width confidence bins, as in Guo et al. (ICML 2017)


def reliability_bins(probabilities: torch.Tensor, labels: torch.Tensor, num_bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width confidence bin: its range, image count, mean confidence and accuracy (None when empty)."""
    confidence, predicted = probabilities.max(-1)
    correct = (predicted == labels).float()
    index = (confidence * num_bins).ceil().long().clamp(1, num_bins) - 1  # (lo, hi] bins; confidence 0 goes first
    bins = []
    for b in range(num_bins):
        members = index == b
        count = int(members.sum())
        bins.append({
            "lower": b / num_bins, "upper": (b + 1) / num_bins, "count": count,
            "confidence": float(confidence[members].mean()) if count else None,
            "accuracy": float(correct[members].mean()) if count else None,
        })
    return bins


def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, num_bins: int = ECE_BINS) -> float:
    """Count-weighted mean |accuracy - confidence| over the bins."""
    total = len(labels)
    return sum(b["count"] / total * abs(b["accuracy"] - b["confidence"])
               for b in reliability_bins(probabilities, labels, num_bins) if b["count"])


def brier_score(probabilities: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over images of the squared distance between the probabilities and the one-hot label (0 is perfect)."""
    one_hot = F.one_hot(labels, probabilities.shape[-1]).float()
    return float(((probabilities - one_hot) ** 2).sum(-1).mean())


def calibration_report(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> dict:
    probabilities = (logits.float() / temperature).softmax(-1)
    return {
        "ece": expected_calibration_error(probabilities, labels),
        "nll": mean_cross_entropy(logits.float() / temperature, labels),
        "brier": brier_score(probabilities, labels),
    }


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 200) -> float:
    """The one temperature T minimising the NLL of softmax(logits / T) (fitted in log space, so T stays positive)."""
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")
    logits = logits.detach().float()

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def classifier_head(model) -> torch.nn.Linear:
    """The model's last linear layer onto its classes (cnn, resnet and vit, Transformers' and timm's ViTs alike)."""
    classes = model.config.num_labels
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == classes]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no linear layer onto its {classes} classes")
    return heads[-1]


def with_temperature(model, temperature: float, check_pixels: torch.Tensor):
    """A copy of `model` whose logits are its own divided by `temperature`: folded into the classifier's weights, so
    every loader, `pipeline()` and an ONNX export give the calibrated probabilities; `config.calibration_temperature`
    records the product of every temperature folded in. Checked on `check_pixels` (model inputs)."""
    import copy

    calibrated = copy.deepcopy(model).eval()
    head = classifier_head(calibrated)
    with torch.no_grad():
        head.weight /= temperature
        if head.bias is not None:
            head.bias /= temperature
        expected = model(pixel_values=check_pixels).logits.float() / temperature
        got = calibrated(pixel_values=check_pixels).logits.float()
    if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):  # something after the head (a norm, a scale)
        raise ValueError(f"dividing {type(model).__name__}'s classifier by the temperature does not divide its logits")
    calibrated.config.calibration_temperature = temperature * getattr(model.config, "calibration_temperature", 1.0)
    return calibrated
