"""The core's headline experiments (``core.*``): each takes ``seed`` and ``quick`` and returns findings."""
