"""Layer 4: workflows built on the estimator. They never import each other.

Training (classifier resolution and cross-validation), evaluation against boxes, the HTML
report and the demo data.
"""
