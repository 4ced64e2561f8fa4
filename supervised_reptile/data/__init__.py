"""Datasets on disk -> uint8 class pools (no TensorFlow), and the checks of a data folder."""
