"""Priors opened through the study they are listed on: detail, signed report, images."""
