"""edgedeploy.blocks."""
