"""Evaluation shared by training and attacks: devices and precision, image tensors, predictions."""
