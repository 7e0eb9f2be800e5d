"""Analysis of finished runs: tables, claims, plots, landscapes, sharpness, the scale trend."""
