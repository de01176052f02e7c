"""The agreement suite: every registry model, in every file format, on every dataset and
backend, against its native library's own predict (``test_agreement.py``)."""
