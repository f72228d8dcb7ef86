"""The pure core: plain data in, plain data out. No Ray, S3, CLI or plotting here."""
