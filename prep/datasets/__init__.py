"""The images: dataset listings, reading any image as RGB, the synthetic and procedural
sets, MINC-2500's download."""
