"""Quantizer backends; every module here registers one with @register_quantizer."""
