"""Code generators, one package per backend (c/, cuda/, hls/), and the target registry."""
