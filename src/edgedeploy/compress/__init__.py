"""edgedeploy.compress."""
