"""Faithfulness of a map in ``gapsvm evaluate``: on feature cells, or on image pixels.

Average Drop and Increase in Confidence (Chattopadhay et al., 2018) and the deletion and
insertion AUCs (Petsiuk et al., 2018) need the class score of masked inputs. Scores are
turned into probabilities first, as both papers use them: ``sigmoid(s_c)`` for a two-class
head (``s_1`` is ``decision_function``, ``s_0 = -s_1``), a softmax over the class scores
otherwise (:func:`~gapsvm.core.metrics.scores_to_probabilities`). The mask of Average Drop is
the map's positive part over its maximum (the ``"positive"`` normalisation of
:func:`~gapsvm.core.cam.normalize_cam`).

``faithfulness="features"`` (the default) masks **feature-map cells** instead of pixels.
gapsvm's head is linear on the average of the backbone's maps, so a masked map's score is
``mean(mask * A_c) + b_c`` with ``A_c`` the class map
(:func:`~gapsvm.core.metrics.linear_gap_scores`): exact for the head, pure NumPy on the
cached maps, no network pass. Deleted cells are set to zero (no activation) and insertion
starts from an all-zero map. Because ranking cells by ``A_c`` is the optimal order for a
linear head, the CAM reaches the best possible curves here by construction; the baselines show
how far a map without model knowledge falls short.

``faithfulness="image"`` masks **pixels** as the papers do (deletion to black, insertion into
a blurred copy with RISE's 11 px, sigma 5 kernel, Average Drop on ``image * map``) and runs the
network on every masked image: ``1 + 2 * image_steps`` passes per map and image (plus one for
the unmasked image), so keep ``image_steps`` small. ``faithfulness="none"`` skips these metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from gapsvm.core import metrics as M
from gapsvm.core.cam import normalize_cam
from gapsvm.core.metrics.baselines import MethodMaps

__all__ = [
    "FAITHFULNESS",
    "Faithfulness",
    "curves_to_aucs",
    "feature_faithfulness",
    "image_faithfulness",
    "image_scorer",
]

#: The ``faithfulness`` choices of :func:`~gapsvm.workflows.evaluate.evaluate`.
FAITHFULNESS = ("features", "image", "none")

# RISE's insertion canvas: a Gaussian blur with an 11 px kernel and sigma 5.
_BLUR_KSIZE, _BLUR_SIGMA = 11, 5.0

ImageScorer = Callable[[list[np.ndarray]], np.ndarray]


def feature_faithfulness(
    class_maps: np.ndarray,
    intercepts: np.ndarray,
    c: int,
    saliency: np.ndarray,
    n_steps: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Faithfulness of ``saliency`` on the feature cells of one image, for class ``c``.

    Parameters
    ----------
    class_maps : numpy.ndarray
        ``(h, w, k)`` class maps without intercept.
    intercepts : numpy.ndarray
        ``(k,)`` the head's intercepts.
    c : int
        Class index.
    saliency : numpy.ndarray
        ``(h, w)`` map on the same feature grid.
    n_steps : int
        Deletion / insertion steps.
    rng : numpy.random.Generator
        Breaks ties in the deletion order.

    Returns
    -------
    dict
        ``full_prob`` and ``masked_prob`` (floats), ``deletion`` and ``insertion`` (the
        class probability after each of the ``n_steps + 1`` steps).
    """
    # Two calls, not one stack: a map of ones must give the unmasked score to the last bit.
    full = M.linear_gap_scores(class_maps, intercepts, np.ones(saliency.shape))
    masked = M.linear_gap_scores(class_maps, intercepts, normalize_cam(saliency, "positive"))
    full, masked = M.scores_to_probabilities(np.stack([full, masked]))[:, c]
    schedule = M.deletion_insertion_orders(saliency, n_steps, rng=rng)
    deletion, insertion = M.linear_gap_curves(class_maps, intercepts, schedule)
    return {
        "full_prob": float(full),
        "masked_prob": float(masked),
        "deletion": M.scores_to_probabilities(deletion)[:, c],
        "insertion": M.scores_to_probabilities(insertion)[:, c],
    }


def image_faithfulness(
    score_images: ImageScorer,
    image: np.ndarray,
    c: int,
    full_prob: float,
    saliency: np.ndarray,
    n_steps: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Faithfulness of ``saliency`` on the pixels of one image, for class ``c``.

    Parameters
    ----------
    score_images : callable
        ``score_images(list of RGB uint8 images)`` -> ``(n, k)`` class scores.
    image : numpy.ndarray
        The RGB ``uint8`` image.
    c : int
        Class index.
    full_prob : float
        Class probability of the unmasked image, through the same path as the masked ones.
    saliency : numpy.ndarray
        ``(H, W)`` map at image resolution.
    n_steps : int
        Deletion / insertion steps.
    rng : numpy.random.Generator
        Breaks ties in the deletion order.

    Returns
    -------
    dict
        As :func:`feature_faithfulness`.
    """
    weights = normalize_cam(saliency, "positive")[:, :, None]
    masked = np.clip(image * weights + 0.5, 0, 255).astype(np.uint8)
    # An unchanged image (a map of ones) keeps its score by definition; a network pass in
    # another batch could differ in the last bit and count as an "increase".
    unchanged = np.array_equal(masked, image)
    batch = [] if unchanged else [masked]
    blurred = cv2.GaussianBlur(image, (_BLUR_KSIZE, _BLUR_KSIZE), _BLUR_SIGMA)
    masks = list(M.deletion_insertion_orders(saliency, n_steps, rng=rng).masks())
    # Deletion step 0 and insertion's last step are the untouched image: its probability is
    # known, so those two passes are skipped.
    batch += [np.where(m[:, :, None], np.uint8(0), image) for m in masks[1:]]
    batch += [np.where(m[:, :, None], image, blurred) for m in masks[:-1]]
    probs = M.scores_to_probabilities(score_images(batch))[:, c]
    if unchanged:
        probs = np.concatenate([[full_prob], probs])
    k = len(masks) - 1
    return {
        "full_prob": float(full_prob),
        "masked_prob": float(probs[0]),
        "deletion": np.concatenate([[full_prob], probs[1 : 1 + k]]),
        "insertion": np.concatenate([probs[1 + k :], [full_prob]]),
    }


def image_scorer(model: Any, input_size: Any) -> ImageScorer:
    """Class scores of images through ``model``'s network, never through its cache.

    Parameters
    ----------
    model : GapClassifier
        Fitted.
    input_size : input size
        The network input size (e.g. the first evaluation scale).

    Returns
    -------
    callable
        ``score(list of RGB uint8 images)`` -> ``(n, k)`` class scores.
    """
    # Masked images are one-off inputs: caching them would only fill the disk.
    fz = model.featurizer().set_params(cache_dir=None, cache_maps=False, verbose=0)

    def score(images: list[np.ndarray]) -> np.ndarray:
        return model.class_scores(fz.extract(images, input_size=input_size).gap)

    return score


@dataclass(frozen=True)
class Faithfulness:
    """One evaluation's faithfulness settings, applied to each method's maps.

    Attributes
    ----------
    kind : {"features", "image", "none"}
    n_steps : int
        Deletion / insertion steps of that kind.
    intercepts : numpy.ndarray
        ``(k,)`` the head's intercepts.
    score_images : callable or None
        From :func:`image_scorer`; needed for ``kind="image"``.
    """

    kind: str
    n_steps: int
    intercepts: np.ndarray
    score_images: ImageScorer | None = None

    def of(
        self,
        mm: MethodMaps,
        c: int,
        class_maps: np.ndarray,
        image: np.ndarray | None,
        full_probs: np.ndarray | None,
        rng: np.random.Generator,
    ) -> dict[str, Any]:
        """The faithfulness values of one method's maps (empty for ``"none"``).

        Parameters
        ----------
        mm : MethodMaps
            The method's maps.
        c : int
            Class index.
        class_maps : numpy.ndarray
            ``(h, w, k)`` class maps of the image at the scoring scale.
        image : numpy.ndarray or None
            The RGB image (``kind="image"``).
        full_probs : numpy.ndarray or None
            ``(k,)`` class probabilities of the unmasked image (``kind="image"``).
        rng : numpy.random.Generator
            Breaks ties in the deletion order.

        Returns
        -------
        dict
        """
        if self.kind == "features":
            return feature_faithfulness(
                class_maps, self.intercepts, c, mm.grid, self.n_steps, rng
            )
        if self.kind == "image":
            return image_faithfulness(
                self.score_images, image, c, float(full_probs[c]), mm.image, self.n_steps, rng
            )
        return {}


def curves_to_aucs(per_pair: list[dict[str, Any]]) -> None:
    """Replace each pair's deletion and insertion curves by their AUCs, in place.

    Parameters
    ----------
    per_pair : list of dict
        The report's ``per_image`` entries; the data set's mean curves are in the summary.
    """
    for pair in per_pair:
        for r in pair["methods"].values():
            if "deletion" in r:
                r["deletion_auc"] = M.auc(r.pop("deletion"))
                r["insertion_auc"] = M.auc(r.pop("insertion"))
