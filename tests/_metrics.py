"""Shared by the metric tests: Hypothesis settings and strategies for small maps and boxes.

Import as ``from _metrics import FAST, small_maps`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gapsvm.core.boxes import Box

# The rest of the settings (no database, no deadline) is conftest.py's profile.
FAST = settings(max_examples=60)

#: Finite maps of 1 to 10 pixels a side, values in [-1, 1].
small_maps = arrays(
    np.float64,
    st.tuples(st.integers(1, 10), st.integers(1, 10)),
    elements=st.floats(-1.0, 1.0, allow_nan=False),
)
#: Up to four boxes, some partly or wholly outside a small map, some empty.
small_boxes = st.lists(
    st.builds(
        lambda x, y, w, h: Box(x, y, x + w, y + h),
        st.integers(-3, 12),
        st.integers(-3, 12),
        st.integers(0, 8),
        st.integers(0, 8),
    ),
    max_size=4,
)
