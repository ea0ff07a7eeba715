"""Data sources: dataset formats, class names, subsets and label-noise sources."""
