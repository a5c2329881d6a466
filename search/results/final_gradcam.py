"""``gradcam.png``: where the final model looked, over a fixed sample of test images.

Each panel overlays a Grad-CAM map (``medtune.trainables.gradcam``: the deepest stage with at
least 7x7 cells, bilinear to the image) on the image as the model saw it (grey, or in colour for
colour data), on one 0..1 colour scale; a caption
says what the image is and what the model said (red when it was wrong), and a note under the
panels names the feature map, so a coarse map is never mistaken for a sharp one.

* Two classes: both classes, right and wrong predictions at the chosen threshold (on the
  calibrated scores the report decides on), most confident first, each with the Grad-CAM of the
  positive class's score.
* More classes: per true class, its most confident right and wrong predictions (the predicted
  class read at the report's operating point), each with the Grad-CAM of the class the model predicted.

* Multi-label findings: a few test images that show findings (the most findings first), one panel
  per finding an image shows, each with the Grad-CAM of that finding's logit: where the model looked
  for that finding, red when its threshold missed it.

All figures are drawn by one ``_draw_cam_grid``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtune.search.results.final_members import FinalMember

#: At most this many panels in the multi-class figure.
MAX_PANELS = 16


@dataclass(frozen=True)
class Caption:
    text: str
    correct: bool


def gradcam_figure(member: FinalMember, threshold: float, data: Any, path: Path, per_group: int,
                   offsets: np.ndarray | None = None, thresholds: dict[str, float] | None = None) -> None:
    """The Grad-CAM figure of ``member``'s test predictions (two classes at ``threshold``; more at the
    operating point's log-probability ``offsets``, None for the plain argmax; multi-label findings
    at each finding's threshold in ``thresholds``)."""
    if thresholds is not None:
        _multilabel_figure(member, data, path, thresholds, per_group)
    elif member.test_scores.ndim == 2:
        _multiclass_figure(member, data, path, per_group, offsets)
    else:
        _binary_figure(member, threshold, data, path, per_group)


def _cams(member: FinalMember, data: Any, rows: list[int], target: int) -> tuple[np.ndarray, Any]:
    """Grad-CAM maps of ``target``'s score for test images ``rows`` (one batch), and the layer used."""
    from medtune.trainables.config import TrialConfig
    from medtune.trainables.data import SplitArrays
    from medtune.trainables.factories import make_batches
    from medtune.trainables.gradcam import gradcam_with_layer

    cfg = TrialConfig.from_dict({**member.config, "channels_last": False})
    sample = SplitArrays(images=np.asarray(data.test.images[rows]), labels=data.test.labels[rows])
    device = next(member.model.parameters()).device
    images, _ = next(iter(make_batches(cfg, sample, train=False, device=device)))
    return gradcam_with_layer(member.model, images, target_class=target)


def _binary_figure(member: FinalMember, threshold: float, data: Any, path: Path, per_group: int) -> None:
    from medtune.trainables.gradcam import pick_examples

    names = tuple(data.class_names)
    chosen = pick_examples(member.test_scores, data.test.labels, threshold, per_group, names)
    if not chosen:
        return
    idx = [i for i, _ in chosen]
    maps, layer = _cams(member, data, idx, target=len(names) - 1)
    captions = []
    for i, heat in zip(idx, maps):
        label, score = int(data.test.labels[i]), float(member.test_scores[i])
        correct = int(score >= threshold) == label
        flat = " (map all 0)" if heat.max() <= 0 else ""  # no positive evidence at this stage
        captions.append(Caption(f"true: {names[-1] if label else names[0]}\n"
                                f"predicted {'correct' if correct else 'wrong'}, score {score:.2f}{flat}", correct))
    fig = _draw_cam_grid([data.test.images[i] for i in idx], list(maps), captions, fontsize=11,
                         ticks=[0, 0.25, 0.5, 0.75, 1],
                         title=f"Grad-CAM for the {names[-1]!r} score, the positive class (test images)",
                         note=f"score = {'calibrated ' if member.calibration is not None else ''}P({names[-1]}), "
                              f"predicted {names[-1]} at score >= {threshold:.2f}; each map "
                              f"scaled to its own maximum\nfeature map: {layer.describe()}, bilinear to the image")
    _save_palette_png(fig, path)


def _multiclass_figure(member: FinalMember, data: Any, path: Path, per_class: int,
                       offsets: np.ndarray | None = None) -> None:
    from medtune.trainables.operating_point import predict_classes

    probs, labels, names = member.test_scores, data.test.labels, tuple(data.class_names)
    predicted = predict_classes(probs, offsets)
    chosen: list[int] = []
    for k in range(len(names)):
        for correct in (True, False):
            idx = np.flatnonzero((labels == k) & ((predicted == k) == correct))
            chosen += idx[np.argsort(-probs[idx].max(axis=1), kind="stable")][:max(1, per_class // 2)].tolist()
    chosen = chosen[:MAX_PANELS]
    if not chosen:
        return
    maps: dict[int, np.ndarray] = {}
    layer = None
    for target in sorted({int(predicted[i]) for i in chosen}):  # one pass per predicted class
        rows = [i for i in chosen if predicted[i] == target]
        heat, layer = _cams(member, data, rows, target)
        maps.update(zip(rows, heat))
    captions = [Caption(f"true: {names[labels[i]]}\npredicted: {names[predicted[i]]} ({probs[i, predicted[i]]:.2f})",
                        bool(predicted[i] == labels[i])) for i in chosen]
    fig = _draw_cam_grid([data.test.images[i] for i in chosen], [maps[i] for i in chosen], captions, fontsize=10,
                         ticks=None, title="Grad-CAM for each image's predicted class (test images)",
                         note=f"each map scaled to its own maximum; feature map: {layer.describe()}")
    fig.savefig(path, dpi=100)
    _close(fig)


def _multilabel_figure(member: FinalMember, data: Any, path: Path, thresholds: dict[str, float],
                       images: int) -> None:
    """One panel per (image, finding it shows) for up to ``images`` test images with the most
    findings, at most ``MAX_PANELS``; each map is of that finding's logit."""
    probs, labels, names = member.test_scores, np.asarray(data.test.labels), tuple(data.class_names)
    order = np.argsort(-labels.sum(axis=1), kind="stable")
    rows = [int(i) for i in order[:max(1, images)] if labels[i].any()]
    pairs = [(i, k) for i in rows for k in np.flatnonzero(labels[i])][:MAX_PANELS]
    if not pairs:
        return
    maps: dict[tuple[int, int], np.ndarray] = {}
    layer = None
    for k in sorted({k for _, k in pairs}):  # one pass per finding
        these = [i for i, kk in pairs if kk == k]
        heat, layer = _cams(member, data, these, int(k))
        maps.update({(i, k): h for i, h in zip(these, heat)})
    captions = []
    for i, k in pairs:
        threshold = thresholds.get(names[k], 0.5)
        found = probs[i, k] >= threshold
        captions.append(Caption(f"{names[k]}: {'found' if found else 'missed'}\nscore {probs[i, k]:.2f} "
                                f"(threshold {threshold:.2f})", bool(found)))
    fig = _draw_cam_grid([data.test.images[i] for i, _ in pairs], [maps[p] for p in pairs], captions, fontsize=10,
                         ticks=None, title="Grad-CAM for each finding an image shows (test images)",
                         note=f"each map of that finding's logit, scaled to its own maximum; feature map: "
                              f"{layer.describe()}")
    _save_palette_png(fig, path)


def _draw_cam_grid(images: list[Any], maps: list[np.ndarray], captions: list[Caption], *, fontsize: int,
                   ticks: list[float] | None, title: str, note: str) -> Any:
    """Panels of up to four columns: each image (grey, or RGB) with its map (bilinear to the image) over it
    in ``jet`` on one 0..1 scale, its caption above (red when wrong); a colour bar, ``title`` and
    ``note``. Returns the figure, unsaved."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cols = min(4, len(images))
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.1, 3.0 * rows + 1.0), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    cmap, norm = "jet", Normalize(0.0, 1.0)
    for ax, image, heat, caption in zip(axes.flat, images, maps, captions):
        raw = np.asarray(image)
        colour = raw.ndim == 3 and raw.shape[-1] == 3
        resized = torch.nn.functional.interpolate(torch.from_numpy(heat)[None, None], size=raw.shape[:2],
                                                  mode="bilinear", align_corners=False)[0, 0].numpy()
        if colour:
            ax.imshow(raw, interpolation="bilinear")
        else:
            ax.imshow(raw if raw.ndim == 2 else raw.mean(axis=-1), cmap="gray", interpolation="bilinear")
        ax.imshow(resized, cmap=cmap, norm=norm, alpha=0.45, interpolation="bilinear")
        ax.set_title(caption.text, fontsize=fontsize, color="black" if caption.correct else "firebrick")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, shrink=0.8, label="Grad-CAM (relative)", ticks=ticks)
    fig.suptitle(title, fontsize=13)
    fig.supxlabel(note, fontsize=9)
    return fig


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _save_palette_png(fig: Any, path: Path) -> None:
    """A 256-colour palette (dithered, so the smooth maps do not band) keeps the figure near 200 KB
    instead of 600: report.html embeds it."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _close(fig)
    rgb = Image.open(buffer).convert("RGB")
    palette = rgb.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    rgb.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
