"""edgedeploy.export."""
