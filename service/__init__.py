"""The service role: detectors, notifiers and the HTTP surface, fed by Redis streams."""
