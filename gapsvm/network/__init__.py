"""Layer 2: the Keras network and everything that runs it.

The backbone registry, weights and build (:mod:`gapsvm.network.backbone`), the extraction
engine, :class:`~gapsvm.network.featurizer.GapFeaturizer`, the features file and the Dask
path. TensorFlow is imported only when a backbone is built.
"""
