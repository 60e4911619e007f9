"""edgedeploy.report."""
