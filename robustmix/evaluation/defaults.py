"""The evaluate command's defaults, in a module that imports nothing (its --help reads them)."""

DEFAULT_N = 1000  # test images: a class-balanced subset, minutes of FGSM and I-FGSM on a CPU
ECE_BINS = 15  # Guo et al. (2017)'s equal-width confidence bins, the count most papers report
RESAMPLES = 1000  # bootstrap resamples of the calibration intervals
KIND = "robustmix.evaluate"  # config.json's "kind" in a folder that command wrote
