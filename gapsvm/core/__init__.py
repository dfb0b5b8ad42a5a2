"""Layer 1: the pure core (numpy, OpenCV, scikit-learn; never Keras or TensorFlow).

Input sizes, folder scanning, image decoding, output names and PNG writing, CAM math and its
display normalisations, the one overlay path, boxes, the boxes CSV reader, metrics, the
feature cache and the linear head.
"""
