"""Data: the readers of MNIST-format IDX files (:mod:`~lipot.data.readers`), the seeded 2-D and
10-D toy pairs with a known W1 (:mod:`~lipot.data.toys`), and the two benchmark families with a
known W1 in any dimension: the funnel pairs of Korotin et al. (:mod:`~lipot.data.funnels`) and
the pairs moved along the rays of a random GNP network (:mod:`~lipot.data.network_pairs`);
label-preserving augmentation of image batches (:mod:`~lipot.data.augment`). Nothing is
downloaded.
"""

from __future__ import annotations

from .augment import RandomTranslate
from .readers import *  # noqa: F401,F403
from .readers import __all__ as _readers

__all__ = [*_readers, "RandomTranslate"]
