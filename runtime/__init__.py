"""The tiny C runtime linked into every artifact, and the Python loaders/runners."""
