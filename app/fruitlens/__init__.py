"""fruitlens: fruit image classification at scale with PySpark and VGG16."""

__version__ = "0.1.0"
