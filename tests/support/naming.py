"""The class rule's cases: where a file sits under --input, and the (label, split, refusal) the
listing and Spark must both give it (images.class_rule, images.with_names)."""

CLASS_RULE: list[tuple[str, tuple[str | None, str | None, str | None]]] = [
    ("Apple/1.jpg", ("Apple", None, None)),
    ("Training/Apple/1.jpg", ("Apple", "Training", None)),
    ("Test/Apple Braeburn/x y.jpg", ("Apple Braeburn", "Test", None)),
    ("stray.jpg", (None, None, "no_class_folder")),
    ("Training/stray.jpg", (None, None, "no_class_folder")),
    ("Apple/d0/1.jpg", (None, None, "too_deep")),
    ("Training/Apple/d0/d1/1.jpg", (None, "Training", "too_deep")),
    ("Validation/Apple/1.jpg", (None, None, "too_deep")),  # not a split: Validation is a class
]
