"""edgedeploy.metrics."""
