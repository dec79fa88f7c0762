"""The web app: generate synthetic recordings from trained models in a browser or through a JSON API.

    python -m serve --models models/            (docs/serve.md)

settings.py (options, quality presets, download formats), length.py (the length field), catalog.py (model
files, their cards, the loaded-model cache), render.py (one recording: sampling, HDF5, preview, exports),
jobs.py (the bounded worker pool, the queue limit, expiry), schemas.py (the API's request and response
bodies), app.py (the FastAPI routes and error handlers), static/ (the page), __main__.py (the command).
"""
