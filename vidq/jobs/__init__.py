"""The domain: job states and their transitions, options and presets, submit/claim/cancel/finish."""
