"""Firmware on the PS: model image file, accelerator driver, board and simulation backends, task
scheduler, post-processing and the ``python -m firmware`` CLI (see ``docs/firmware.md``)."""
