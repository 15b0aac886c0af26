"""Fitted device models shipped as defaults (``<kind>.json``), read with
:func:`labrram.calibration.files.default_calibration`. Regenerate with ``make calibration``."""
