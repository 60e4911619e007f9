"""edgedeploy.targets."""
