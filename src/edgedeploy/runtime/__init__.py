"""edgedeploy.runtime."""
