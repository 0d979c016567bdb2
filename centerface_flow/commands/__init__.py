"""Sub-commands of the ``centerface`` CLI (see centerface_flow.cli)."""
