"""Dataset names, class names and where to get each dataset (imports no numpy or torch)."""

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
DATASETS = ("cifar10", "fashion-mnist")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
HOW_TO_GET = {
    "cifar10": (
        "pass --data with a cifar-10-batches-py folder, cifar-10-python.tar.gz, or an image-folder "
        "tree (or .tar.gz of one) with train/<class>/ and test/<class>/, or add --download"
    ),
    "fashion-mnist": (
        "install it with 'apt-get install dataset-fashion-mnist' "
        "(files go to /usr/share/datasets/fashion-mnist) or pass --data with the IDX files"
    ),
}
